"""``fhir_deid.<view>`` built by SQL inside the warehouse from ``fhir.<view>``.

The statement is a chain of CTEs over the identified view: the patient's pseudonym, then the
digest keying its date shift, then the shift in days, then one expression per kept column. Only
the warehouse sees rows; Python only writes the SQL. ``deid_select`` is the whole query; an
incremental build (``incremental.py``) runs it over the changed keys' rows of the view.

The SQL holds HMAC's pads (derived from the key, never the key itself): it is never logged
here. Snowflake keeps statement text in its query history; see docs/deid.md.
"""

# Identifiers come from validated view and column names through ``quoted``; values are the
# hex pads and fixed ZIP prefixes, never input, so string-built SQL is safe here.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..views.compiler import KEY_COLUMNS, quote
from ..views.definition import Column
from ..views.runner import VIEW_SCHEMA
from ..warehouse.sql import Dialect, quoted
from .keyed import AGE_CAP, DeidKey, KeyedSql, restricted_zip3
from .policy import ViewPolicy, date_kind

DEID_SCHEMA = "fhir_deid"
PATIENT = "deid__patient"  # helper columns, never in the output
DIGEST = "deid__digest"
NUMBER = "deid__number"
SHIFT = "deid__shift"
# the keyed pseudonym of the row's resource key (server and id), which an incremental build
# matches on; the raw server URL and resource id themselves never reach the table
ROW_KEY = "_deid_key"


@dataclass(frozen=True, slots=True)
class DeidContext:
    """What one build needs besides the policy: the key, the dialect and the reference day
    (ages and the "90 or older" birth date are computed as of it; injected for tests)."""

    key: DeidKey
    dialect: Dialect
    today: date


def column_sql(column: Column, kind: str, ctx: DeidContext, name: str) -> str:
    """The expression of one kept column (``name``: the quoted source column)."""
    sql = KeyedSql(ctx.dialect)
    if kind == "hash":
        return sql.pseudonym(ctx.key, name)
    if kind == "date":
        return sql.add_days(name, SHIFT, date_kind(column) or "timestamp")
    if kind == "birthdate":
        cutoff = sql.years_before(ctx.today.isoformat(), AGE_CAP)
        shifted = sql.add_days(name, SHIFT, date_kind(column) or "date")
        # Safe Harbor (b)(2)(i)(C): everyone 90 or older shares one birth date
        return f"CASE WHEN {name} <= {cutoff} THEN {cutoff} ELSE {shifted} END"
    if kind == "year":
        return f"YEAR({name})"
    if kind == "zip":
        return sql.zip3(name, restricted_zip3())
    if kind == "age":
        return f"CASE WHEN {name} > {AGE_CAP - 1} THEN {AGE_CAP} ELSE {name} END"
    return name  # keep


def resource_key_text(server: str, rid: str) -> str:
    """SQL: one unambiguous text of a resource key (the server's length first)."""
    return f"CAST(LENGTH({server}) AS VARCHAR) || ':' || {server} || '/' || {rid}"


def row_key_sql(key: DeidKey, dialect: Dialect, server: str, rid: str) -> str:
    """SQL: the keyed pseudonym of the resource key (``ROW_KEY``'s value)."""
    return KeyedSql(dialect).pseudonym(key, resource_key_text(server, rid))


def deid_select(
    policy: ViewPolicy, ctx: DeidContext, source: str | None = None, keyed: bool = False
) -> str:
    """The de-identified rows of ``policy.view``, as one SELECT over ``fhir.<view>``.

    Args:
        source: the table to read instead of ``fhir.<view>`` (tests, an incremental slice).
        keyed: add ``ROW_KEY`` last, from the view's ``KEY_COLUMNS``.
    """
    d = ctx.dialect
    table = source or quoted(d, VIEW_SCHEMA, policy.view.name)
    sql = KeyedSql(ctx.dialect)
    patient = sql.pseudonym(ctx.key, quote(policy.patient_key)) if policy.patient_key else "NULL"
    digest = sql.pseudonym(ctx.key, f"'date-shift:' || {PATIENT}")
    outputs = []
    for column, kind in policy.kept():
        name = quote(column.name)
        # the patient's pseudonym is computed once, in deid_1
        value = (
            PATIENT if column.name == policy.patient_key else column_sql(column, kind, ctx, name)
        )
        outputs.append(f"{value} AS {name}")
    if keyed:
        server, rid = (quote(column) for column in KEY_COLUMNS)
        outputs.append(f"{row_key_sql(ctx.key, d, server, rid)} AS {quote(ROW_KEY)}")
    return (
        f"WITH deid_1 AS (SELECT src.*, {patient} AS {PATIENT} FROM {table} AS src), "
        f"deid_2 AS (SELECT deid_1.*, {digest} AS {DIGEST} FROM deid_1), "
        f"deid_3 AS (SELECT deid_2.*, {sql.shift_number(DIGEST)} AS {NUMBER} FROM deid_2), "
        f"deid_4 AS (SELECT deid_3.*, {sql.shift_days(NUMBER)} AS {SHIFT} FROM deid_3) "
        f"SELECT {', '.join(outputs)} FROM deid_4"
    )
