"""The default views give the same rows on DuckDB and on Snowflake SQL (fakesnow), sandbox data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import Any

import duckdb
import pytest

from fhir_assets.sandbox import Sandbox
from fhir_assets.views import ViewDefinition, compile_view
from fhir_assets.views.library import load_views

from .conformance import canonical, fakesnow_views

# fakesnow's cursor warns that it copies Arrow results; irrelevant here
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")
PER_TYPE = 120  # resources fetched per type: enough variety, fast on the emulator


@pytest.fixture(scope="module")
def resources(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    """Some resources of every type a default view reads, from the shared sandbox."""
    types = {view.resource for view in load_views()}
    with sandbox.fhir_client("system/*.read") as client:
        return {t: list(islice(client.search(t, {"_count": 50}), PER_TYPE)) for t in types}


@pytest.fixture(scope="module")
def snowflake(resources: dict[str, list[dict[str, Any]]]) -> Iterator[Any]:
    with fakesnow_views() as connection:
        cursor = connection.cursor()
        for kind, items in resources.items():
            table = f"fhir_raw.{kind.lower()}"
            cursor.execute(f"CREATE TABLE {table} (id VARCHAR, resource VARIANT, deleted BOOLEAN)")
            for item in items:
                cursor.execute(
                    f"INSERT INTO {table} SELECT %s, PARSE_JSON(%s), FALSE",
                    (item["id"], json.dumps(item)),
                )
        yield connection


@pytest.fixture(scope="module")
def duck(resources: dict[str, list[dict[str, Any]]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    for kind, items in resources.items():
        table = f"fhir_raw.{kind.lower()}"
        con.execute(f"CREATE TABLE {table} (id VARCHAR, resource VARCHAR, deleted BOOLEAN)")
        con.executemany(
            f"INSERT INTO {table} VALUES (?, ?, FALSE)", [(r["id"], json.dumps(r)) for r in items]
        )
    return con


def rows(cursor: Any, sql: str) -> list[dict[str, Any]]:
    cursor.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("view", load_views(), ids=lambda view: view.name)
def test_default_view_same_rows_on_both_dialects(
    view: ViewDefinition, duck: duckdb.DuckDBPyConnection, snowflake: Any
) -> None:
    on_duckdb = rows(duck.cursor(), compile_view(view, "duckdb").sql)
    on_snowflake = rows(snowflake.cursor(), compile_view(view, "snowflake").sql)
    assert on_duckdb, f"no {view.resource} rows in the sandbox sample"
    assert canonical(on_snowflake) == canonical(on_duckdb)
