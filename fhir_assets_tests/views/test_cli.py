"""``fhir-assets views run`` on a real NDJSON file (mixed resource types)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fhir_assets.cli import app
from fhir_assets.views.library import DEFAULTS_DIR

OBSERVATIONS = [
    {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "valueQuantity": {"value": 60 + i, "unit": "/min"},
        "subject": {"reference": f"Patient/p{i}"},
    }
    for i in range(3)
]
VIEW = str(DEFAULTS_DIR / "observation.json")


@pytest.fixture
def ndjson(tmp_path: Path) -> Path:
    path = tmp_path / "export.ndjson"
    other = {"resourceType": "Patient", "id": "p0"}
    path.write_text("\n".join(json.dumps(r) for r in [*OBSERVATIONS, other]) + "\n")
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["views", "run", *args])
    return result.exit_code, result.stdout, result.stderr


def test_views_run_prints_csv(ndjson: Path) -> None:
    code, out, _ = invoke(VIEW, "--input", str(ndjson))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["id"], r["patient_id"], r["value_quantity"]) for r in rows] == [
        ("o0", "p0", "60.0"),
        ("o1", "p1", "61.0"),
        ("o2", "p2", "62.0"),
    ]


def test_views_run_writes_json_array_of_rows(ndjson: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    code, _, _ = invoke(VIEW, "--input", str(ndjson), "--output", str(out))
    assert code == 0
    rows = json.loads(out.read_text())
    columns = [c["name"] for c in json.loads(Path(VIEW).read_text())["select"][0]["column"]]
    assert [list(row) for row in rows] == [columns] * 3
    assert sorted(row["value_unit"] for row in rows) == ["/min"] * 3


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_views_run_writes_files_duckdb_reads(ndjson: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"rows{suffix}"
    code, _, _ = invoke(VIEW, "--input", str(ndjson), "--output", str(out))
    assert code == 0
    rows = duckdb.sql(f"SELECT id, code_code FROM '{out}' ORDER BY id").fetchall()
    assert rows == [("o0", "8867-4"), ("o1", "8867-4"), ("o2", "8867-4")]


def test_views_run_rejects_unknown_output_format(ndjson: Path, tmp_path: Path) -> None:
    code, _, err = invoke(VIEW, "--input", str(ndjson), "--output", str(tmp_path / "x.xlsx"))
    assert code == 2
    assert "--output must end in" in err


def test_views_run_reports_invalid_view(ndjson: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resource": "Observation", "select": [{"forEach": "@@"}]}')
    code, _, err = invoke(str(bad), "--input", str(ndjson))
    assert code == 1
    assert "FHIRPath '@@'" in err


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake"])
def test_views_sql_prints_the_compiled_query(dialect: str, ndjson: Path) -> None:
    result = CliRunner().invoke(app, ["views", "sql", VIEW, "--dialect", dialect])
    assert result.exit_code == 0
    assert result.stdout.startswith("WITH ")
    if dialect == "duckdb":  # the printed SQL runs as printed
        con = duckdb.connect()
        con.execute("CREATE SCHEMA fhir_raw")
        con.execute(
            "CREATE TABLE fhir_raw.observation AS SELECT json AS resource, FALSE AS deleted "
            "FROM read_ndjson_objects(?) WHERE json->>'resourceType' = 'Observation'",
            [str(ndjson)],
        )
        ids = sorted(row[0] for row in con.execute(result.stdout).fetchall())
        assert ids == ["o0", "o1", "o2"]
    else:
        assert "FLATTEN" in result.stdout or "GET_PATH" in result.stdout


def test_views_sql_reports_unsupported_function(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"resource": "Patient", "select": [{"column": [{"name": "x", "path": "name.trace()"}]}]}'
    )
    result = CliRunner().invoke(app, ["views", "sql", str(bad)])
    assert result.exit_code == 1
    assert "unsupported FHIRPath function trace() at position 5" in result.stderr


def test_views_sql_rejects_unknown_dialect() -> None:
    result = CliRunner().invoke(app, ["views", "sql", VIEW, "--dialect", "oracle"])
    assert result.exit_code == 1
    assert "unknown SQL dialect" in result.stderr
