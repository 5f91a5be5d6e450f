"""unionAll compiles to one guarded branch: k sibling unionAll selects, linear SQL, same rows."""

from __future__ import annotations

import json
from itertools import pairwise, product
from typing import Any

import duckdb
import pytest

from fhir_assets.views import compile_view, parse_view

from .conformance import canonical, fakesnow_views

PATIENTS = [
    {
        "resourceType": "Patient",
        "id": "a",
        "telecom": [{"value": "t1"}, {"value": "t2"}],
        "name": [{"family": "F"}],
    },
    {"resourceType": "Patient", "id": "b", "name": [{"family": "G"}, {"family": "H"}]},
    {"resourceType": "Patient", "id": "c"},
]


def sibling_unions(k: int) -> dict[str, Any]:
    """A Patient view with ``k`` sibling selects, each a unionAll of telecom and name rows."""
    selects: list[dict[str, Any]] = [{"column": [{"name": "id", "path": "id"}]}]
    for j in range(k):
        telecom = {"forEach": "telecom", "column": [{"name": f"c{j}", "path": "value"}]}
        name = {"forEach": "name", "column": [{"name": f"c{j}", "path": "family"}]}
        selects.append({"unionAll": [telecom, name]})
    return {"resourceType": "ViewDefinition", "resource": "Patient", "select": selects}


def expected(k: int) -> list[dict[str, Any]]:
    """Rows by the spec: per patient, the product over selects of (telecom values + families)."""
    rows = []
    for patient in PATIENTS:
        values = [t["value"] for t in patient.get("telecom", [])]
        values += [n["family"] for n in patient.get("name", [])]
        for combination in product(values, repeat=k):
            rows.append({"id": patient["id"]} | {f"c{j}": v for j, v in enumerate(combination)})
    return rows


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake"])
def test_unionall_sql_size_linear(dialect: str) -> None:
    sizes = [len(compile_view(parse_view(sibling_unions(k)), dialect).sql) for k in range(1, 7)]
    steps = [b - a for a, b in pairwise(sizes)]
    # each sibling adds about the same text (it doubled the branches before)
    assert max(steps) <= 1.5 * min(steps), sizes
    assert sizes[-1] < 50_000, sizes


def duck_rows(sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    con.execute("CREATE TABLE fhir_raw.patient (resource JSON, deleted BOOLEAN)")
    for item in PATIENTS:
        con.execute("INSERT INTO fhir_raw.patient VALUES (?, FALSE)", [json.dumps(item)])
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("k", [1, 3])
def test_unionall_rows_duckdb(k: int) -> None:
    rows = duck_rows(compile_view(parse_view(sibling_unions(k)), "duckdb").sql)
    assert canonical(rows) == canonical(expected(k))
    assert len(rows) == 3**k + 2**k  # a: 3 values per select, b: 2, c: none


@pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")
def test_unionall_rows_snowflake() -> None:
    with fakesnow_views() as connection:
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE fhir_raw.patient (resource VARIANT, deleted BOOLEAN)")
        for item in PATIENTS:
            cursor.execute(
                "INSERT INTO fhir_raw.patient SELECT PARSE_JSON(%s), FALSE", (json.dumps(item),)
            )
        cursor.execute(compile_view(parse_view(sibling_unions(2)), "snowflake").sql)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert canonical(rows) == canonical(expected(2))
