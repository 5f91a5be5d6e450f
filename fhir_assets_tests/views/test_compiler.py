"""Compiling and running views on DuckDB: named errors, deleted rows, view folders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fhir_assets.views import (
    UnsupportedError,
    ViewDefinitionError,
    compile_view,
    parse_view,
)
from fhir_assets.views.library import DEFAULTS_DIR, load_views
from fhir_assets.views.runner import materialize
from fhir_assets.warehouse.duckdb import DuckDBWarehouse

PATIENTS = [
    {"resourceType": "Patient", "id": "p1", "name": [{"family": "A", "given": ["x", "y"]}]},
    {"resourceType": "Patient", "id": "p2", "name": [{"family": "B"}, {"family": "C"}]},
]


def view(*columns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resource": "Patient", "select": [{"column": list(columns)}], **extra}


def column(path: str, name: str = "c", **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": path, **extra}


@pytest.fixture
def warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB file with a raw patient table (second row deleted = a tombstone)."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA fhir_raw")
    con.execute("CREATE TABLE fhir_raw.patient (id VARCHAR, resource VARCHAR, deleted BOOLEAN)")
    rows = [(p["id"], json.dumps(p), False) for p in PATIENTS]
    rows.append(("p3", json.dumps({"resourceType": "Patient", "id": "p3"}), True))
    con.executemany("INSERT INTO fhir_raw.patient VALUES (?, ?, ?)", rows)
    return con


@pytest.mark.parametrize(
    ("path", "construct"),
    [
        ("name.family.trace()", "function trace() at position 12"),
        ("gender.memberOf('http://x')", "memberOf('http://x'): no local ValueSet with that url"),
        ("link.other.resolve()", "function resolve(): a view reads one resource at a time"),
        ("name.first().ofType(HumanName)", "ofType() except right after an element"),
        ("name.ofType(string)", "ofType(string) on Patient.name, which is a HumanName"),
        ("deceased.ofType(Quantity)", "whose types are boolean, dateTime at position 9"),
        ("birthDate + 1 'mg'", "date arithmetic with a 'mg' quantity at position 10"),
    ],
)
@pytest.mark.parametrize("dialect", ["duckdb", "snowflake"])
def test_compile_unsupported_construct_is_named(path: str, construct: str, dialect: str) -> None:
    with pytest.raises(UnsupportedError, match="unsupported .*" + re.escape(construct)):
        compile_view(parse_view(view(column(path))), dialect)


def test_compile_snowflake_decimal_boundary_raises() -> None:
    observation = view(column("value.ofType(Quantity).value.lowBoundary()", type="decimal"))
    parsed = parse_view({**observation, "resource": "Observation"})
    compile_view(parsed, "duckdb")
    with pytest.raises(UnsupportedError, match="precision"):
        compile_view(parsed, "snowflake")


def test_run_excludes_deleted_rows(warehouse: duckdb.DuckDBPyConnection) -> None:
    sql = compile_view(parse_view(view(column("id", "id")))).sql
    assert sorted(warehouse.execute(sql).fetchall()) == [("p1",), ("p2",)]


def test_run_single_value_column_with_many_values_fails(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    sql = compile_view(parse_view(view(column("name.family", "family")))).sql
    with pytest.raises(duckdb.Error, match=r"'family'.*more than one value"):
        warehouse.execute(sql).fetchall()


def test_run_collection_column(warehouse: duckdb.DuckDBPyConnection) -> None:
    parsed = parse_view(view(column("id", "id"), column("name.given", "given", collection=True)))
    rows = dict(warehouse.execute(compile_view(parsed).sql).fetchall())
    assert rows == {"p1": ["x", "y"], "p2": []}


def test_materialize_creates_table_in_fhir_schema(warehouse: duckdb.DuckDBPyConnection) -> None:
    parsed = parse_view(
        view(column("id", "id"), column("name.family.first()", "family"), name="pt")
    )
    opened = DuckDBWarehouse(warehouse)  # materialize runs in any landing warehouse
    assert materialize(opened, parsed) == 2
    assert materialize(opened, parsed) == 2  # idempotent: replaced, not appended
    rows = warehouse.execute('SELECT id, family FROM fhir."pt" ORDER BY id').fetchall()
    assert rows == [("p1", "A"), ("p2", "B")]


@pytest.mark.parametrize(
    "raw",
    [
        {"resource": "Patient", "select": []},
        view(column("id", "bad name")),
        view(column("id", "a"), column("id", "a")),
        view(column("id"), constant=[{"name": "x", "valueFoo": 1}]),
        view(column("id"), constant=[{"name": "x", "valueInteger": "1 OR 1=1"}]),
        view(column("id"), constant=[{"name": "x", "valueDecimal": True}]),
        {**view(column("id")), "resource": "Patient; DROP TABLE x"},
    ],
)
def test_parse_view_rejects_invalid(raw: dict[str, Any]) -> None:
    with pytest.raises(ViewDefinitionError):
        parse_view(raw)


def test_defaults_all_compile_for_both_dialects() -> None:
    views = load_views()
    assert {v.name for v in views} >= {
        "patient", "encounter", "observation", "condition", "medication_request",
        "procedure", "immunization", "allergy_intolerance",
    }  # fmt: skip
    for parsed in views:
        for dialect in ("duckdb", "snowflake"):
            assert compile_view(parsed, dialect).sql


def test_load_views_user_folder_overrides_and_adds(tmp_path: Path) -> None:
    custom = json.loads((DEFAULTS_DIR / "patient.json").read_text())
    custom["select"][0]["column"] = [column("id", "id")]
    (tmp_path / "patient.json").write_text(json.dumps(custom))
    (tmp_path / "names.json").write_text(json.dumps(view(column("id", "id"), name="names")))
    views = {v.name: v for v in load_views(tmp_path, {"Patient"})}
    assert set(views) == {"patient", "names"}
    assert [c.name for c in views["patient"].columns] == ["id"]


def test_load_views_missing_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(ViewDefinitionError, match="does not exist"):
        load_views(tmp_path / "nope")


def test_untyped_columns_take_the_element_type(warehouse: duckdb.DuckDBPyConnection) -> None:
    columns = [
        column("active", "active"),
        column("multipleBirthInteger", "births"),
        column("meta.lastUpdated", "updated"),
        column("birthDate", "birth"),  # a date may be partial ("1970"): text
        column("name.count()", "names"),
        column("id", "declared", type="integer"),
    ]
    compiled = compile_view(parse_view(view(*columns)))
    kinds = {c.name: c.kind for c in compiled.columns}
    assert kinds == {
        "active": "boolean",
        "births": "integer",
        "updated": "timestamp",
        "birth": "string",
        "names": "integer",
        "declared": "integer",
    }
    described = warehouse.execute(f"DESCRIBE {compiled.sql}").fetchall()
    types = {row[0]: row[1] for row in described}
    assert types == {
        "active": "BOOLEAN",
        "births": "BIGINT",
        "updated": "TIMESTAMP WITH TIME ZONE",
        "birth": "VARCHAR",
        "names": "BIGINT",
        "declared": "BIGINT",
    }
