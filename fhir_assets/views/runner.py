"""Running compiled views inside the warehouse (DuckDB or Snowflake) over raw tables, or inside
DuckDB over an NDJSON file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..warehouse.sql import identifier
from .compiler import CompiledView, compile_view
from .definition import NAME, ViewDefinition
from .errors import ViewDefinitionError

if TYPE_CHECKING:
    from ..warehouse.protocol import Warehouse

VIEW_SCHEMA = "fhir"
NDJSON_TABLE = "ndjson_resources"


def materialize(warehouse: Warehouse, view: ViewDefinition) -> int:
    """``CREATE OR REPLACE TABLE fhir.<view> AS <compiled view>`` over ``fhir_raw``, compiled
    for the warehouse's dialect and run inside it (no row passes through Python).

    Args:
        warehouse: an open landing warehouse (``warehouse.protocol.Warehouse``).
        view: the view to build; its name is validated (``NAME``), so it is used unquoted
            (Snowflake folds it to upper case like every other table of ours).

    Returns:
        The number of rows in the new table.
    """
    compiled = compile_view(view, warehouse.dialect.name)
    schema, name = identifier(VIEW_SCHEMA), identifier(view.name)
    warehouse.fetch(f"CREATE SCHEMA IF NOT EXISTS {identifier(schema)}")
    warehouse.fetch(f"CREATE OR REPLACE TABLE {identifier(schema, name)} AS {compiled.sql}")
    [(rows,)] = warehouse.fetch(f"SELECT COUNT(*) FROM {identifier(schema, name)}")
    return int(rows)


def load_ndjson(con: duckdb.DuckDBPyConnection, path: Path, resource_type: str) -> str:
    """Load the resources of one type from an NDJSON file into a temporary table.

    Returns:
        The table name, with the ``resource`` and ``deleted`` columns a view reads.

    Raises:
        ViewDefinitionError: the file cannot be read as NDJSON.
    """
    if not NAME.match(resource_type):
        raise ViewDefinitionError(f"invalid resource type {resource_type!r}")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {identifier(NDJSON_TABLE)} AS SELECT json AS resource, "
            f"FALSE AS deleted FROM read_ndjson_objects(?) "
            f"WHERE json_extract_string(json, '$.resourceType') = ?",
            [str(path), resource_type],
        )
    except duckdb.Error as exc:
        raise ViewDefinitionError(f"cannot read NDJSON {path}: {exc}") from exc
    return NDJSON_TABLE


def run_ndjson(
    view: ViewDefinition, path: Path, con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyRelation:
    """The rows of ``view`` over the resources in an NDJSON file, as a DuckDB relation."""
    con = con or duckdb.connect()
    table = load_ndjson(con, path, view.resource)
    compiled: CompiledView = compile_view(view, "duckdb", table=table)
    return con.sql(compiled.sql)


def rows(relation: duckdb.DuckDBPyRelation) -> list[dict[str, Any]]:
    """A relation's rows as dicts keyed by column name."""
    names = relation.columns
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
