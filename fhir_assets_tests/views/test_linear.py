"""forEachOrNull compiles to linear SQL: its size and plan do not double per sibling."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import duckdb
import pytest

from fhir_assets.views import compile_view, parse_view

from .conformance import canonical, fakesnow_views

ELEMENTS = ("name", "telecom", "address", "identifier", "contact", "communication")


def sibling_view(k: int) -> dict[str, Any]:
    """A Patient view with ``k`` sibling forEachOrNull selects."""
    columns = [{"name": name, "path": name} for name in ("id", "gender", "birthDate")]
    selects: list[dict[str, Any]] = [{"column": columns}]
    for element in ELEMENTS[:k]:
        column = {"name": f"{element}_id", "path": "id"}
        index = {"name": f"{element}_index", "path": "%rowIndex"}
        selects.append({"forEachOrNull": element, "column": [column, index]})
    return {"resourceType": "ViewDefinition", "resource": "Patient", "select": selects}


# Real resources carry a narrative and codings: about 1.5 KB, like clinosim's Conditions.
NARRATIVE = {"status": "generated", "div": "<div>" + "Patient summary. " * 80 + "</div>"}


def patients(count: int) -> list[dict[str, Any]]:
    """Patients where each element is present on some, absent on others (one item each)."""
    result = []
    for number in range(count):
        patient: dict[str, Any] = {"resourceType": "Patient", "id": f"p{number}"}
        patient["text"] = NARRATIVE
        patient |= {"gender": "female", "birthDate": f"19{number % 100:02d}-01-01"}
        for bit, element in enumerate(ELEMENTS):
            if number >> bit & 1:
                patient[element] = [{"id": f"{element}{number}"}]
        result.append(patient)
    return result


def expected(resources: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The rows by the spec: one item or the NULL row per element (all have at most one item)."""
    rows = []
    for patient in resources:
        row = {name: patient[name] for name in ("id", "gender", "birthDate")}
        for element in ELEMENTS[:k]:
            items = patient.get(element, [])
            row[f"{element}_id"] = items[0]["id"] if items else None
            row[f"{element}_index"] = 0
        rows.append(row)
    return rows


def duck(resources: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    con.execute("CREATE TABLE fhir_raw.patient (resource VARCHAR, deleted BOOLEAN)")
    con.executemany(
        "INSERT INTO fhir_raw.patient VALUES (?, FALSE)", [(json.dumps(r),) for r in resources]
    )
    return con


def fetch(cursor: Any, sql: str) -> list[dict[str, Any]]:
    cursor.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake"])
def test_foreachornull_sql_size_linear(dialect: str) -> None:
    sizes = [len(compile_view(parse_view(sibling_view(k)), dialect).sql) for k in range(1, 7)]
    assert sizes[-1] < 50_000
    steps = [b - a for a, b in pairwise(sizes)]
    assert max(steps) <= 2 * min(steps)  # a constant increment per sibling, not a doubling


def test_foreachornull_rows_duckdb() -> None:
    resources = patients(64)
    con = duck(resources)
    for k in (1, 3, 6):
        sql = compile_view(parse_view(sibling_view(k)), "duckdb").sql
        assert canonical(fetch(con.cursor(), sql)) == canonical(expected(resources, k))


@pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")
def test_foreachornull_rows_snowflake() -> None:
    resources = patients(16)
    with fakesnow_views() as connection:
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE fhir_raw.patient (resource VARIANT, deleted BOOLEAN)")
        for r in resources:
            cursor.execute(
                "INSERT INTO fhir_raw.patient SELECT PARSE_JSON(%s), FALSE", (json.dumps(r),)
            )
        sql = compile_view(parse_view(sibling_view(6)), "snowflake").sql
        rows = fetch(cursor, sql)
    assert canonical(rows) == canonical(expected(resources, 6))


def plan_nodes(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """How many operators DuckDB's physical plan of ``sql`` has: the work the SQL asks for,
    counted without a clock (run times belong to bench/views.py, not to a unit test)."""
    plan = json.loads(con.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchall()[0][1])
    pending, count = list(plan), 0
    while pending:
        node = pending.pop()
        count += 1
        pending.extend(node.get("children", ()))
    return count


def test_foreachornull_plan_grows_linearly() -> None:
    con = duck(patients(50))
    nodes = [
        plan_nodes(con, compile_view(parse_view(sibling_view(k)), "duckdb").sql)
        for k in range(1, 7)
    ]
    steps = [b - a for a, b in pairwise(nodes)]
    # One more forEachOrNull adds the same few operators (4 here); 2^k branches would double
    # the plan at every step.
    assert len(set(steps)) == 1 and 0 < steps[0] <= 8, nodes
