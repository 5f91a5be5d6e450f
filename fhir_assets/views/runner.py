"""Running compiled views inside the warehouse (DuckDB or Snowflake) over raw tables, or inside
DuckDB over an NDJSON file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..warehouse.sql import identifier, quoted
from .compiler import CompiledView, compile_view
from .definition import NAME, ViewDefinition
from .duckdb_dialect import DuckDBDialect
from .errors import ViewDefinitionError
from .incremental import VIEW_SCHEMA as VIEW_SCHEMA

if TYPE_CHECKING:
    from ..warehouse.protocol import Warehouse

NDJSON_TABLE = "ndjson_resources"
MEMORY_LIMIT = "256MB"


def materialize(warehouse: Warehouse, view: ViewDefinition) -> int:
    """``CREATE OR REPLACE TABLE fhir.<view> AS <compiled view>`` over ``fhir_raw``, compiled
    for the warehouse's dialect and run inside it (no row passes through Python). Without the
    resource key columns: ``incremental.build_view`` builds the tables the assets keep.

    Args:
        warehouse: an open landing warehouse (``warehouse.protocol.Warehouse``).
        view: the view to build; its name is validated (``NAME``) and quoted, since it may be
            an SQL keyword (upper case in Snowflake, like every other table of ours).

    Returns:
        The number of rows in the new table.
    """
    compiled = compile_view(view, warehouse.dialect.name)
    d = warehouse.dialect  # the table name is quoted: a view may be named "order"
    warehouse.fetch(f"CREATE SCHEMA IF NOT EXISTS {identifier(VIEW_SCHEMA)}")
    warehouse.fetch(
        f"CREATE OR REPLACE TABLE {quoted(d, VIEW_SCHEMA, view.name)} AS {compiled.sql}"
    )
    [(rows,)] = warehouse.fetch(f"SELECT COUNT(*) FROM {quoted(d, VIEW_SCHEMA, view.name)}")
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


def bound_memory(con: duckdb.DuckDBPyConnection, limit: str = MEMORY_LIMIT) -> None:
    """Cap DuckDB's memory (it spills to its temp directory beyond): a view over a file of any
    size then runs in bounded RSS."""
    con.execute(f"SET memory_limit = {DuckDBDialect().string(limit)}")
    # keeping the input's row order makes a COPY buffer rows past the limit ("out of memory");
    # and each extra thread holds its own JSON buffers: two threads overran 256 MB (measured
    # on 160k Observations), one ran in about 300 MB RSS
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET threads = 1")


def ndjson_source(path: Path, resource_type: str) -> str:
    """The resources of one type in an NDJSON file, as a subquery read while the view runs
    (streamed: nothing is loaded into a table first)."""
    if not NAME.match(resource_type):
        raise ViewDefinitionError(f"invalid resource type {resource_type!r}")
    if not path.is_file():
        raise ViewDefinitionError(f"cannot read NDJSON {path}: not a file")
    d = DuckDBDialect()  # the path and type go in as quoted string literals
    return (
        f"(SELECT json AS resource, FALSE AS deleted FROM read_ndjson_objects("
        f"{d.string(str(path))}) WHERE json_extract_string(json, '$.resourceType') = "
        f"{d.string(resource_type)})"
    )


def run_ndjson(
    view: ViewDefinition, path: Path, con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyRelation:
    """The rows of ``view`` over the resources in an NDJSON file, as a DuckDB relation.

    The file is read as the relation runs, under ``bound_memory`` (peak RSS about 300 MB
    whatever the file's size, where loading it into a table first took about 4x the file).
    """
    con = con or duckdb.connect()
    bound_memory(con)
    compiled: CompiledView = compile_view(view, "duckdb", table=ndjson_source(path, view.resource))
    return con.sql(compiled.sql)


def rows(relation: duckdb.DuckDBPyRelation) -> list[dict[str, Any]]:
    """A relation's rows as dicts keyed by column name."""
    names = relation.columns
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
