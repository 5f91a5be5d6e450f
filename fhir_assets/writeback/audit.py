"""The audit trail: one row per write attempt, in ``fhir_audit.writes``.

A row says who wrote what, when, how and with which result, but never the resource itself: the
request is identified by the SHA-256 of its canonical JSON. Writers implement the tiny
:class:`AuditWriter` protocol: one for DuckDB, one for Snowflake (:func:`audit_writer` picks).

Every entry of a transaction is recorded as ``sending`` before the transaction goes out, and
again with its result once the answer (or the failure) is in; a ``sending`` row with no later
row of its transaction is an attempt whose answer never arrived (the process was killed), which
the next run reconciles with the server (``reconcile.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from typing import Any, Protocol

import duckdb
import orjson

from ..warehouse.sql import identifier

AUDIT_SCHEMA = "fhir_audit"
AUDIT_TABLE = "writes"

COLUMNS_SQL = """
    recorded_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR NOT NULL,
    server VARCHAR NOT NULL,
    transaction_id VARCHAR,
    attempt INTEGER NOT NULL,
    resource_type VARCHAR NOT NULL,
    resource_id VARCHAR,
    identifier VARCHAR,
    interaction VARCHAR NOT NULL,
    request_hash VARCHAR,
    http_status INTEGER,
    outcome VARCHAR NOT NULL,
    version_id VARCHAR,
    outcome_text VARCHAR
"""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One write attempt of one resource (fields in table column order).

    Attributes:
        transaction_id: groups the entries sent in one Bundle (``None`` when nothing was sent).
        attempt: 1 for the first try of the transaction, then 2, 3, ...
        interaction: ``create`` (conditional on the identifier), ``update`` (If-Match),
            ``validate`` (refused before sending) or ``skip`` (not sent because of a sibling).
        request_hash: SHA-256 of the canonical JSON sent; never the body.
        outcome: what happened, e.g. ``created``, ``updated``, ``conflict``, ``transient``,
            ``rejected``, ``invalid``.
        outcome_text: the OperationOutcome (or validation) texts on failure.
    """

    recorded_at: datetime
    run_id: str
    server: str
    transaction_id: str | None
    attempt: int
    resource_type: str
    resource_id: str | None
    identifier: str | None
    interaction: str
    request_hash: str | None
    http_status: int | None
    outcome: str
    version_id: str | None
    outcome_text: str | None


SENDING = "sending"  # the outcome of an attempt recorded before it was sent


class AuditWriter(Protocol):
    """Where audit records go. Must store every record it is given before returning."""

    def record(self, records: Sequence[AuditRecord]) -> None: ...

    def unsettled(self, server: str) -> list[AuditRecord]:
        """The ``sending`` records of ``server`` that no later record of their transaction
        settles (same transaction, type and request hash), oldest first."""
        ...


def request_hash(resource: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``resource``: sorted keys, no whitespace."""
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


class DuckDBAuditWriter:
    """Appends audit records to ``fhir_audit.writes`` on a DuckDB connection (created if absent).

    Args:
        connection: an open DuckDB connection; the caller owns (and closes) it.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._con = connection
        self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {identifier(AUDIT_SCHEMA)}")
        self._con.execute(
            f"CREATE TABLE IF NOT EXISTS {identifier(AUDIT_SCHEMA, AUDIT_TABLE)} ({COLUMNS_SQL})"
        )

    def record(self, records: Sequence[AuditRecord]) -> None:
        """Insert the records in one statement (all or nothing).

        One multi-row ``VALUES`` insert: DuckDB's ``executemany`` runs row by row (about 10 ms
        per row here), which would dominate the write time.
        """
        if not records:
            return
        row = "(" + ", ".join("?" * len(fields(AuditRecord))) + ")"
        values = ", ".join([row] * len(records))
        self._con.execute(
            f"INSERT INTO {identifier(AUDIT_SCHEMA, AUDIT_TABLE)} VALUES {values}",  # noqa: S608 (constants)
            [value for r in records for value in astuple(r)],
        )

    def unsettled(self, server: str) -> list[AuditRecord]:
        """See :meth:`AuditWriter.unsettled`."""
        rows = self._con.execute(unsettled_query("?"), [server, SENDING, SENDING]).fetchall()
        return [AuditRecord(*row) for row in rows]


def unsettled_query(mark: str) -> str:
    """The query of :meth:`AuditWriter.unsettled`, with ``mark`` as the bind placeholder."""
    return (
        f"SELECT * FROM {identifier(AUDIT_SCHEMA, AUDIT_TABLE)} AS s "  # noqa: S608
        f"WHERE s.server = {mark} AND s.outcome = {mark} AND NOT EXISTS (SELECT 1 FROM "
        f"{identifier(AUDIT_SCHEMA, AUDIT_TABLE)} AS r WHERE r.outcome <> {mark} "
        "AND r.transaction_id = s.transaction_id AND r.resource_type = s.resource_type "
        "AND r.request_hash IS NOT DISTINCT FROM s.request_hash) ORDER BY s.recorded_at"
    )


class SnowflakeAuditWriter:
    """Appends audit records to ``fhir_audit.writes`` in Snowflake (created if absent).

    Args:
        connection: an open snowflake-connector-python connection; the caller owns it.
    """

    def __init__(self, connection: Any) -> None:
        self._con = connection
        with self._con.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {identifier(AUDIT_SCHEMA)}")
            columns = f"({COLUMNS_SQL})"
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {identifier(AUDIT_SCHEMA, AUDIT_TABLE)} {columns}"
            )

    def record(self, records: Sequence[AuditRecord]) -> None:
        """Insert the records in one multi-row statement (the connector binds client side)."""
        if not records:
            return
        row = "(" + ", ".join(["%s"] * len(fields(AuditRecord))) + ")"
        values = ", ".join([row] * len(records))
        with self._con.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {identifier(AUDIT_SCHEMA, AUDIT_TABLE)} VALUES {values}",  # noqa: S608
                [value for r in records for value in astuple(r)],
            )

    def unsettled(self, server: str) -> list[AuditRecord]:
        """See :meth:`AuditWriter.unsettled`."""
        with self._con.cursor() as cursor:
            cursor.execute(unsettled_query("%s"), [server, SENDING, SENDING])
            return [AuditRecord(*row) for row in cursor.fetchall()]


def audit_writer(dialect: str, connection: Any) -> AuditWriter:
    """The audit writer of a warehouse connection (``dialect``: the kind's name, ``duckdb`` or
    ``snowflake``: ``warehouse/kinds.py``)."""
    from ..warehouse.kinds import warehouse_kind

    writer: AuditWriter = warehouse_kind(dialect).audit_writer(connection)
    return writer
