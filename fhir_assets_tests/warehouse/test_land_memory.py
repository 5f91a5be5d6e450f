"""``fhir-assets land`` under DuckDB's memory limit: re-landing data that all changed (the MERGE
path updating every row) fits the default limit, and running out of memory, or finding the file
held by another process, ends in one line that says what to do."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from fhir_assets.cli import app
from fhir_assets.warehouse.duckdb_file import connect_waiting
from fhir_assets.warehouse.errors import WarehouseLockedError

ROWS = 45_000  # about 25 MB: main ran out of its 128 MB after about 31,600 updated rows


def write_observations(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = (
        orjson.dumps(
            {
                "resourceType": "Observation",
                "id": f"obs-{n}",
                "meta": {"versionId": version, "lastUpdated": f"2025-01-0{version}T00:00:00Z"},
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": f"Patient/pat-{n % 5000}"},
                "note": [{"text": "x" * 350}],
            }
        )
        for n in range(ROWS)
    )
    (folder / "Observation.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def land(folder: Path, database: Path, *args: str) -> tuple[int, str, str]:
    env = {"FHIR_DUCKDB_PATH": str(database), "FHIR_WAREHOUSE": "duckdb"}
    result = CliRunner().invoke(
        app, ["land", str(folder), "--server", "https://s/fhir", *args], env=env
    )
    return result.exit_code, result.stdout, result.stderr


def test_land_command_relands_every_resource_changed_under_the_default_limit(
    tmp_path: Path,
) -> None:
    database = tmp_path / "w.duckdb"
    first = land(write_observations(tmp_path / "v1", "1"), database)
    assert first[0] == 0, first
    code, out, err = land(write_observations(tmp_path / "v2", "2"), database)
    assert code == 0, err
    assert out.splitlines()[1].split() == ["Observation", str(ROWS), "0", str(ROWS), "0", "0", "0"]
    with duckdb.connect(str(database), read_only=True) as con:
        versions = con.execute("SELECT version_id, COUNT(*) FROM fhir_raw.observation GROUP BY 1")
        assert versions.fetchall() == [("2", ROWS)]


def test_land_command_out_of_memory_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    assert land(write_observations(tmp_path / "v1", "1"), database)[0] == 0
    code, _, err = land(
        write_observations(tmp_path / "v2", "2"), database, "--memory-limit", "12MB"
    )
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "ran out of memory" in err and "--memory-limit" in err


def hold(database: Path) -> subprocess.Popen[bytes]:
    """Another process holding ``database`` open for writing (it prints ``ready``)."""
    script = (
        f"import duckdb, time; c = duckdb.connect({str(database)!r}); "
        "print('ready', flush=True); time.sleep(60)"
    )
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)


def test_connect_waiting_says_who_holds_the_file_then_fails_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "held.duckdb"
    holder = hold(database)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        started = time.monotonic()
        with pytest.raises(WarehouseLockedError) as raised:
            connect_waiting(str(database), wait_s=1.5)
        # gave up after wait_s, not the 120 s default (60: room for a loaded machine)
        assert 1.5 <= time.monotonic() - started < 60
        assert f"process {holder.pid}" in str(raised.value)
        assert f"process {holder.pid}" in caplog.text and "waiting" in caplog.text
    finally:
        holder.kill()
        holder.wait()


def test_land_command_names_the_process_holding_the_file(tmp_path: Path) -> None:
    database = tmp_path / "held.duckdb"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes(b'{"resourceType": "Patient", "id": "p1"}\n')
    holder = hold(database)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        env = {"FHIR_DUCKDB_PATH": str(database), "FHIR_DUCKDB_LOCK_WAIT_S": "1"}
        result = CliRunner().invoke(app, ["land", str(folder)], env=env)
        assert result.exit_code == 1
        failure = [line for line in result.stderr.splitlines() if line.startswith("land failed")]
        assert len(failure) == 1 and f"process {holder.pid}" in failure[0]
        assert "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()
