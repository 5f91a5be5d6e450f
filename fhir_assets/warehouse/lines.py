"""Staged rows (``STAGE_SCHEMA``: what a warehouse MERGEs), built from checked JSON lines or
from Python values.

``checked_rows`` serves the landings that MERGE (DuckDB into a table that already holds the
server's rows, and Snowflake): DuckDB applies the fast checks to a batch of lines
(``duckdb_sql.checked_lines``) and the rows come back as Arrow. A Snowflake landing runs it on an
in-memory DuckDB connection of its own, so that both warehouses check alike.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import duckdb_sql
from .arrays import bool_array, string_array
from .merge_sql import STAGE_COLUMNS
from .tombstones import Tombstone

LINES_VIEW = "_fhir_lines"
STAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("version_id", pa.string()),
        ("last_updated", pa.string()),
        ("resource", pa.string()),
        ("deleted", pa.bool_()),
    ]
)
assert tuple(STAGE_SCHEMA.names) == STAGE_COLUMNS  # noqa: S101 (import-time layout guard)


def checked_rows(
    connection: Any, lines: pa.Table, resource_type: str
) -> tuple[pa.Table, list[int]]:
    """The lines that pass the fast checks as staged rows, and the positions (``n``) of those
    that do not.

    Args:
        connection: a DuckDB connection (it reads ``lines`` in place).
        lines: a batch in ``batches.LINES_SCHEMA``.
        resource_type: the type being landed.
    """
    relation = connection.from_arrow(lines)  # not register(): see the duckdb_landing.py module doc
    checked = relation.query(LINES_VIEW, duckdb_sql.checked_lines(LINES_VIEW, resource_type))
    table = checked.to_arrow_table()
    ok = table.column("ok")
    rejected = table.filter(pc.invert(ok)).column("n").to_pylist()
    rows = table.filter(ok).select(list(STAGE_SCHEMA.names)).cast(STAGE_SCHEMA)
    return rows, rejected


def stage_table(
    ids: list[str],
    versions: list[str | None],
    updated: list[str | None],
    texts: list[str],
    gone: list[Tombstone],
    deleted_at: str,
) -> pa.Table:
    """An Arrow table in ``STAGE_SCHEMA``: resource rows, then tombstones (resource NULL)."""
    return pa.table(
        [
            string_array(ids + [t.id for t in gone]),
            string_array(versions + [t.version_id for t in gone]),
            string_array(updated + [t.last_updated or deleted_at for t in gone]),
            string_array(texts + [None] * len(gone)),
            bool_array([False] * len(texts) + [True] * len(gone)),
        ],
        schema=STAGE_SCHEMA,
    )
