"""Messages and file handling around type(), memberOf() and resolve() (rows: cases/fhirpath_types).

The rows are checked by ``test_cases.py`` on DuckDB and the Snowflake emulator; here: what a view
author reads when something is missing, and where ValueSet files are picked up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fhir_assets.views import compile_view, load_view, parse_view
from fhir_assets.views.errors import UnsupportedError, ViewDefinitionError
from fhir_assets.views.library import load_views

URL = "http://example.org/ValueSet/female"
VALUESET = {
    "resourceType": "ValueSet",
    "url": URL,
    "compose": {
        "include": [
            {"system": "http://hl7.org/fhir/administrative-gender", "concept": [{"code": "female"}]}
        ]
    },
}


def view(path: str, name: str = "members") -> dict[str, Any]:
    columns = [{"name": "id", "path": "id"}, {"name": "v", "path": path}]
    return {"resourceType": "ViewDefinition", "name": name, "resource": "Patient",
            "select": [{"column": columns}]}  # fmt: skip


def write(path: Path, raw: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def rows(sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    con.execute("CREATE TABLE fhir_raw.patient (resource JSON, deleted BOOLEAN)")
    for item in ({"id": "a", "gender": "female"}, {"id": "b", "gender": "male"}, {"id": "c"}):
        con.execute("INSERT INTO fhir_raw.patient VALUES (?, FALSE)", [json.dumps(item)])
    return sorted(con.execute(sql).fetchall())


def test_member_of_unknown_url_names_it_and_where_to_put_it() -> None:
    with pytest.raises(UnsupportedError) as caught:
        compile_view(parse_view(view(f"gender.memberOf('{URL}')")))
    message = str(caught.value)
    assert "unsupported" in message and URL in message
    assert "FHIR_VIEWS_DIR" in message and "valuesets/" in message


@pytest.mark.parametrize("where", ["beside", "valuesets"])
def test_member_of_reads_valueset_beside_the_view(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "views"
    write(folder / ("female.json" if where == "beside" else "valuesets/female.json"), VALUESET)
    path = write(folder / "members.json", view(f"gender.memberOf('{URL}')"))
    assert rows(compile_view(load_view(path)).sql) == [("a", True), ("b", False), ("c", None)]
    # the views folder (FHIR_VIEWS_DIR) loads the view and skips the ValueSet file
    (loaded,) = [v for v in load_views(folder) if v.name == "members"]
    assert rows(compile_view(loaded).sql) == [("a", True), ("b", False), ("c", None)]


def test_valueset_without_concepts_or_expansion_is_refused(tmp_path: Path) -> None:
    filtered = {**VALUESET, "compose": {"include": [{"system": "http://loinc.org"}]}}
    write(tmp_path / "loinc.json", filtered)
    path = write(tmp_path / "members.json", view(f"gender.memberOf('{URL}')"))
    with pytest.raises(ViewDefinitionError, match=r"expansion\.contains"):
        load_view(path)


def test_resolve_says_unsupported_and_suggests_get_reference_key() -> None:
    with pytest.raises(UnsupportedError) as caught:
        compile_view(parse_view(view("managingOrganization.resolve().name")))
    assert "unsupported" in str(caught.value) and "getReferenceKey()" in str(caught.value)


@pytest.mark.parametrize("path", ["gender.type()", "gender.type().id"])
def test_type_outside_name_or_namespace_is_unsupported(path: str) -> None:
    with pytest.raises(UnsupportedError, match="unsupported"):
        compile_view(parse_view(view(path)))
