"""Incremental view builds: only the resources landed since the last build are recomputed.

A view table carries each row's resource key (``compiler.KEY_COLUMNS``: the raw table's
``source_server`` and ``id``). A build after the first reads the keys whose raw row was landed
after the previous build's watermark (``ingested_at``, which every landing sets on each
row it inserts, replaces or tombstones), deletes those keys' rows from the view table and inserts
the view's rows of those resources (none for a tombstone). A changed compiled query (its hash),
a missing watermark or a missing table rebuilds in full. Either way the table holds what a full
build would.

``refresh_keys`` is the reusable part: given the changed keys, it updates any table derived
per resource key (a view, or a table derived from a view's rows).

Concurrency: a landing stamps its rows with its start time and may commit in several batches,
so a build must not run while a landing of its raw table is in flight (DuckDB: one writer of
the file at a time; Dagster: the views' automation condition waits while a run of the raw asset
is in progress). The watermark is strict (``>``): a landing's rows all share its time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.sql import identifier, quoted
from .compiler import KEY_COLUMNS, compile_view
from .definition import ViewDefinition

if TYPE_CHECKING:
    from ..warehouse.protocol import Warehouse

VIEW_SCHEMA = "fhir"
CHANGED = "fhir_changed_keys"  # a temporary table, one per connection
# the view is compiled once (it takes ~0.1-0.5 s for the default views) over this table name,
# then pointed at the raw table or at the changed rows
SOURCE = "fhir_view_source"


@dataclass(frozen=True, slots=True)
class BuildState:
    """What a build leaves in its materialization metadata for the next one."""

    view_hash: str  # sha256 of the compiled (keyed) query: a new definition or compiler
    watermark: str | None  # the raw table's latest ingested_at (ISO) when the build started


@dataclass(frozen=True, slots=True)
class BuildResult:
    rows: int  # rows in the table afterwards
    mode: str  # "full" or "incremental"
    changed: int  # resources recomputed (every raw row on a full build)
    state: BuildState


def view_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


def raw_watermark(warehouse: Warehouse, resource_type: str) -> str | None:
    """The latest ``ingested_at`` of the raw table (ISO 8601), None when it is empty."""
    [(latest,)] = warehouse.fetch(
        f"SELECT MAX(ingested_at) FROM {identifier(RAW_SCHEMA, resource_type.lower())}"
    )
    if latest is None:
        return None
    return latest.isoformat() if isinstance(latest, datetime) else str(latest)


def table_has_keys(warehouse: Warehouse, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists with the key columns (an older full build has none)."""
    names = warehouse.fetch(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE UPPER(table_schema) = '{schema.upper()}' AND UPPER(table_name) = "
        f"'{table.upper()}'"
    )
    return set(KEY_COLUMNS) <= {str(name).lower() for (name,) in names}


def refresh_keys(
    warehouse: Warehouse, target: str, keys: str, rows: str, match: str | None = None
) -> None:
    """Replace the rows of ``keys`` in a table derived per resource key, in one transaction.

    Args:
        warehouse: the open warehouse.
        target: the derived table, quoted (``quoted(dialect, schema, name)``); it has the
            ``KEY_COLUMNS``.
        keys: a table or subquery with columns ``source_server`` and ``id``: the changed keys.
        rows: a query giving the table's new rows of those keys (same columns, same order),
            none for a deleted resource.
        match: the condition between ``target`` and ``k`` (the keys) selecting the rows to
            delete, for a table keyed otherwise (default: equal ``KEY_COLUMNS``).
    """
    # quoted lower case in both warehouses, as the compiled view names its columns
    server, rid = (f'{target}."{column}"' for column in KEY_COLUMNS)
    match = match or f"{server} = k.source_server AND {rid} = k.id"
    warehouse.fetch("BEGIN TRANSACTION")
    try:
        warehouse.fetch(f"DELETE FROM {target} USING {keys} AS k WHERE {match}")
        warehouse.fetch(f"INSERT INTO {target} {rows}")
    except Exception:
        warehouse.fetch("ROLLBACK")
        raise
    warehouse.fetch("COMMIT")


def build_view(
    warehouse: Warehouse, view: ViewDefinition, previous: BuildState | None = None
) -> BuildResult:
    """Build ``fhir.<view>``: incrementally from ``previous`` when it still applies, else in
    full (``CREATE OR REPLACE TABLE ... AS``).

    Returns:
        The rows, the mode, the resources recomputed and the state for the next build.
    """
    d = warehouse.dialect
    sql = compile_view(view, d.name, table=SOURCE, keyed=True).sql
    state = BuildState(view_hash(sql), raw_watermark(warehouse, view.resource))
    target = quoted(d, VIEW_SCHEMA, view.name)
    warehouse.fetch(f"CREATE SCHEMA IF NOT EXISTS {identifier(VIEW_SCHEMA)}")
    since = previous.watermark if previous and previous.view_hash == state.view_hash else None
    if since is not None and table_has_keys(warehouse, VIEW_SCHEMA, view.name):
        changed = update_since(warehouse, view, sql, target, since)
        return BuildResult(count(warehouse, target), "incremental", changed, state)
    raw = identifier(RAW_SCHEMA, view.resource.lower())
    warehouse.fetch(f"CREATE OR REPLACE TABLE {target} AS {over(sql, raw)}")
    changed = count(warehouse, raw)
    return BuildResult(count(warehouse, target), "full", changed, state)


def over(sql: str, table: str) -> str:
    """The view compiled over ``SOURCE``, reading ``table`` instead (the first ``FROM`` is the
    base stage's: the first CTE, before any literal)."""
    return sql.replace(f"FROM {SOURCE} r", f"FROM {table} r", 1)


def update_since(
    warehouse: Warehouse, view: ViewDefinition, sql: str, target: str, watermark: str
) -> int:
    """Recompute the resources landed after ``watermark``; returns how many."""
    d = warehouse.dialect
    raw = identifier(RAW_SCHEMA, view.resource.lower())
    moment = d.to_timestamp(d.literal(watermark))
    warehouse.fetch(
        f"CREATE OR REPLACE TEMPORARY TABLE {CHANGED} AS SELECT source_server, id, resource, "
        f"deleted FROM {raw} WHERE ingested_at > {moment}"
    )
    changed = count(warehouse, CHANGED)
    if changed:
        refresh_keys(warehouse, target, CHANGED, over(sql, CHANGED))
    warehouse.fetch(f"DROP TABLE IF EXISTS {CHANGED}")
    return changed


def count(warehouse: Warehouse, table: str) -> int:
    [(rows,)] = warehouse.fetch(f"SELECT COUNT(*) FROM {table}")
    return int(rows)
