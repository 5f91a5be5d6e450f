"""Checked JSON lines as staged rows, for the landings that MERGE (DuckDB into a table that
already holds the server's rows, and Snowflake).

DuckDB parses each line once, takes out id, versionId and lastUpdated and applies the fast
checks (``sql.checked_lines``); the rows come back as Arrow in ``batches.STAGE_SCHEMA``. A
Snowflake landing runs this on an in-memory DuckDB connection of its own, so that both
warehouses check alike.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import sql
from .batches import STAGE_SCHEMA

LINES_VIEW = "_fhir_lines"


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
    relation = connection.from_arrow(lines)  # not register(): see DuckDBLanding.stage
    checked = relation.query(LINES_VIEW, sql.checked_lines(LINES_VIEW, resource_type))
    table = checked.to_arrow_table()
    ok = table.column("ok")
    rejected = table.filter(pc.invert(ok)).column("n").to_pylist()
    rows = table.filter(ok).select(list(STAGE_SCHEMA.names)).cast(STAGE_SCHEMA)
    return rows, rejected
