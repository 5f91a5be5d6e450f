"""``fhir-assets land`` on hostile or odd input: a type in content that is no catalog R4 type is
reported and never becomes a table; a directory or unreadable path named like input is
reported; a UTF-8 BOM is skipped, not quarantined."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from fhir_assets.cli import app
from fhir_assets.warehouse.files import plan_folder

META = {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00.000Z"}


def line(resource_type: str, id_: str = "a") -> bytes:
    return orjson.dumps({"resourceType": resource_type, "id": id_, "meta": META}) + b"\n"


def land(folder: Path, database: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["land", str(folder)],
        env={"FHIR_DUCKDB_PATH": str(database), "FHIR_WAREHOUSE": "duckdb"},
    )
    return result.exit_code, result.stdout, result.stderr


def tables(database: Path) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        )
        return {name for (name,) in rows.fetchall()}


@pytest.mark.parametrize(
    "resource_type",
    ["select", "foo", "Foo", "\uff2fbservation", "patient", "Patient; DROP TABLE x"],
)
def test_an_unknown_type_in_content_is_reported_not_landed(
    tmp_path: Path, resource_type: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "data.ndjson").write_bytes(line(resource_type))
    (folder / "Patient.ndjson").write_bytes(line("Patient"))

    code, _, err = land(folder, tmp_path / "w.duckdb")

    assert code == 1 and "cannot tell the resource type" in err and "data.ndjson" in err
    assert "is not an R4/R4B resource type name" in err  # why, not "name it <Type>.ndjson"
    assert tables(tmp_path / "w.duckdb") == {"fhir_raw.patient", "fhir_raw._quarantine"}


@pytest.mark.parametrize("resource_type", ["Group", "CarePlan", "QuestionnaireResponse"])
def test_a_valid_type_outside_the_catalog_in_content_lands(
    tmp_path: Path, resource_type: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "data.ndjson").write_bytes(line(resource_type))
    code, out, err = land(folder, tmp_path / "w.duckdb")
    assert code == 0, err
    assert resource_type in out
    assert f"fhir_raw.{resource_type.lower()}" in tables(tmp_path / "w.duckdb")


def test_a_directory_named_like_input_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "Patient.ndjson").mkdir(parents=True)
    (folder / "Observation.ndjson").write_bytes(line("Observation"))
    code, out, err = land(folder, tmp_path / "w.duckdb")
    assert code == 1 and "Patient.ndjson looks like an input file but is a directory" in err
    assert "Observation" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(line("Patient"))
    path.chmod(0)
    plan = plan_folder(tmp_path)
    assert plan.unreadable == [(path, "cannot be read (permissions)")]


def test_a_broken_link_named_like_input_is_reported(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").symlink_to(tmp_path / "gone")
    plan = plan_folder(tmp_path)
    assert [(p.name, why.split(" (")[0]) for p, why in plan.unreadable] == [
        ("Patient.ndjson", "is not a regular file")
    ]
    assert plan.files == {} and plan.unknown == []


@pytest.mark.parametrize("name", ["data.ndjson", "Patient.ndjson"])
def test_a_bom_is_skipped(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).write_bytes(b"\xef\xbb\xbf" + line("Patient", "a") + line("Patient", "b"))
    code, _, err = land(folder, tmp_path / "w.duckdb")
    assert code == 0, err
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM fhir_raw.patient").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM fhir_raw._quarantine").fetchone() == (0,)


def test_odd_line_ends_land_and_a_non_utf8_line_is_quarantined_by_number(tmp_path: Path) -> None:
    # BOM, CRLF, a blank line, a line of invalid UTF-8 and a last line without a newline: the
    # good lines land, the bad one is quarantined with its line number (main crashed whole)
    folder = tmp_path / "in"
    folder.mkdir()
    bad = b'{"resourceType":"Patient","id":"c\xff\xfe","meta":{"versionId":"1"}}\n'
    body = b"\xef\xbb\xbf" + line("Patient", "a").replace(b"\n", b"\r\n") + bad + b"\r\n"
    (folder / "Patient.ndjson").write_bytes(body + line("Patient", "d").rstrip(b"\n"))
    code, _, err = land(folder, tmp_path / "w.duckdb")
    assert code == 0, err
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        ids = con.execute("SELECT id FROM fhir_raw.patient ORDER BY id").fetchall()
        quarantined = con.execute("SELECT line, error FROM fhir_raw._quarantine").fetchall()
    assert ids == [("a",), ("d",)]
    assert [(n, why.split(" (")[0]) for n, why in quarantined] == [(2, "not JSON: not UTF-8")]
