"""``fhir_deid.<view>`` built by SQL inside the warehouse from ``fhir.<view>``.

The statement is a chain of CTEs over the identified view: the patient's pseudonym, then the
digest keying its date shift, then the shift in days, then one expression per kept column. Only
the warehouse sees rows; Python only writes the SQL. ``deid_select`` is the whole query, so an
incremental build later needs only a WHERE on the changed keys and a DELETE + INSERT.

The SQL holds HMAC's pads (derived from the key, never the key itself): it is never logged
here. Snowflake keeps statement text in its query history; see docs/deid.md.
"""

# Identifiers come from validated view and column names through ``quoted``; values are the
# hex pads and fixed ZIP prefixes, never input, so string-built SQL is safe here.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from ..views.compiler import quote
from ..views.definition import Column
from ..views.runner import VIEW_SCHEMA
from ..warehouse.sql import Dialect, identifier, quoted
from .keyed import AGE_CAP, DeidKey, KeyedSql, restricted_zip3
from .policy import ViewPolicy, date_kind

if TYPE_CHECKING:
    from ..warehouse.protocol import Warehouse

DEID_SCHEMA = "fhir_deid"
PATIENT = "deid__patient"  # helper columns, never in the output
DIGEST = "deid__digest"
NUMBER = "deid__number"
SHIFT = "deid__shift"


@dataclass(frozen=True, slots=True)
class DeidContext:
    """What one build needs besides the policy: the key, the dialect and the reference day
    (ages and the "90 or older" birth date are computed as of it; injected for tests)."""

    key: DeidKey
    dialect: Dialect
    today: date


def column_sql(column: Column, kind: str, ctx: DeidContext, name: str) -> str:
    """The expression of one kept column (``name``: the quoted source column)."""
    sql = KeyedSql(ctx.dialect.name)
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


def deid_select(policy: ViewPolicy, ctx: DeidContext, source: str | None = None) -> str:
    """The de-identified rows of ``policy.view``, as one SELECT over ``fhir.<view>``.

    Args:
        source: the table to read instead of ``fhir.<view>`` (tests, an incremental slice).
    """
    d = ctx.dialect
    table = source or quoted(d, VIEW_SCHEMA, policy.view.name)
    sql = KeyedSql(ctx.dialect.name)
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
    return (
        f"WITH deid_1 AS (SELECT src.*, {patient} AS {PATIENT} FROM {table} AS src), "
        f"deid_2 AS (SELECT deid_1.*, {digest} AS {DIGEST} FROM deid_1), "
        f"deid_3 AS (SELECT deid_2.*, {sql.shift_number(DIGEST)} AS {NUMBER} FROM deid_2), "
        f"deid_4 AS (SELECT deid_3.*, {sql.shift_days(NUMBER)} AS {SHIFT} FROM deid_3) "
        f"SELECT {', '.join(outputs)} FROM deid_4"
    )


def materialize(warehouse: Warehouse, policy: ViewPolicy, key: DeidKey, today: date) -> int:
    """``CREATE OR REPLACE TABLE fhir_deid.<view> AS <deid_select>``; returns the row count."""
    ctx = DeidContext(key, warehouse.dialect, today)
    target = quoted(warehouse.dialect, DEID_SCHEMA, policy.view.name)
    warehouse.fetch(f"CREATE SCHEMA IF NOT EXISTS {identifier(DEID_SCHEMA)}")
    warehouse.fetch(f"CREATE OR REPLACE TABLE {target} AS {deid_select(policy, ctx)}")
    [(rows,)] = warehouse.fetch(f"SELECT COUNT(*) FROM {target}")
    return int(rows)
