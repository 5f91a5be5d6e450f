"""``fhir-assets land DIR``: NDJSON files per type (plain, gzip, deleted Bundles) into DuckDB."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from fhir_assets.cli import app

from .helpers import patient


def observation(oid: str, version: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": version, "lastUpdated": "2025-01-01T00:00:00Z"},
        "status": "final",
        "code": {"text": "x"},
    }


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    (folder / "deleted").mkdir(parents=True)
    (folder / "Patient.ndjson").write_bytes(
        orjson.dumps(patient("p1", "1", "2025-01-01T00:00:00Z")) + b"\nnot json\n"
    )
    (folder / "Observation-1.ndjson").write_bytes(orjson.dumps(observation("o1", "1")) + b"\n")
    (folder / "Observation-2.ndjson.gz").write_bytes(
        gzip.compress(orjson.dumps(observation("o2", "1")) + b"\n")
    )
    deletion = {"resourceType": "Bundle", "type": "transaction",
                "entry": [{"request": {"method": "DELETE", "url": "Observation/o1"}}]}  # fmt: skip
    (folder / "deleted" / "del_1.ndjson").write_bytes(orjson.dumps(deletion) + b"\n")
    (folder / "manifest.json").write_bytes(b'{"transactionTime": "2025-02-01T00:00:00Z"}')
    return folder


@pytest.mark.parametrize("validation", ["fast", "full"])
def test_land_command_lands_a_folder_and_relanding_changes_nothing(
    export: Path, tmp_path: Path, validation: str
) -> None:
    path = tmp_path / "w.duckdb"
    env = {"FHIR_DUCKDB_PATH": str(path), "FHIR_WAREHOUSE": "duckdb"}
    args = ["land", str(export), "--validation", validation]
    first = CliRunner().invoke(app, args, env=env)
    second = CliRunner().invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    rows = {line.split()[0]: line.split()[1:] for line in first.output.splitlines()[1:]}
    assert rows["Observation"] == ["3", "2", "0", "1", "0", "0"]
    assert rows["Patient"] == ["2", "1", "0", "0", "0", "1"]
    again = {line.split()[0]: line.split()[1:] for line in second.output.splitlines()[1:]}
    assert again["Observation"] == ["3", "0", "0", "0", "3", "0"]
    with duckdb.connect(str(path), read_only=True) as con:
        deleted = con.execute("SELECT id, last_updated FROM fhir_raw.observation WHERE deleted")
        assert [(i, t.isoformat()) for i, t in deleted.fetchall()] == [
            ("o1", "2025-02-01T00:00:00+00:00")
        ]
        [(line, source)] = con.execute("SELECT line, source FROM fhir_raw._quarantine").fetchall()
        assert (line, source) == (2, "Patient.ndjson")


def test_land_command_reports_files_of_unknown_type(tmp_path: Path) -> None:
    (tmp_path / "data.ndjson").write_bytes(b"[1, 2]\n")
    env = {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    result = CliRunner().invoke(app, ["land", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "cannot tell the resource type" in result.stderr
