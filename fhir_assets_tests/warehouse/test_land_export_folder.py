"""``fhir-assets land`` of folders written by ``fhir-assets export`` from the scripted Bulk Data
server: whose data it is and as of when (no flags), mixed-type deletion files, broken gzip."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from fhir_assets.cli import app
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply

FULL_TIME, INCREMENTAL_TIME = "2026-11-25T10:00:00.000Z", "2026-11-26T10:00:00.000Z"


def ndjson(*resources: dict) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def resource(kind: str, rid: str) -> dict:
    return {"resourceType": kind, "id": rid}


@pytest.fixture
def server() -> Iterator[BulkServer]:
    with BulkServer() as s:
        yield s


def export(server: BulkServer, out: Path, manifest: dict, *args: str) -> None:
    server.status = [Reply(200, manifest)]
    argv = ["export", "--out", str(out), "--base-url", server.url, *args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output


def land(folder: Path, database: Path) -> dict[str, list[str]]:
    env = {"FHIR_DUCKDB_PATH": str(database), "FHIR_WAREHOUSE": "duckdb"}
    result = CliRunner().invoke(app, ["land", str(folder)], env=env)
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}


def rows(database: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as con:
        query = f"SELECT id, deleted, source_server, last_updated FROM fhir_raw.{table} ORDER BY id"  # noqa: S608
        return con.execute(query).fetchall()


def test_an_export_folder_lands_as_its_servers_data_with_mixed_type_deletions(
    server: BulkServer, tmp_path: Path
) -> None:
    server.files |= {
        "p.ndjson": ndjson(resource("Patient", "p1"), resource("Patient", "p2")),
        "o.ndjson": ndjson(resource("Observation", "o1"), resource("Observation", "o2")),
    }
    full = server.manifest([("Patient", "p.ndjson", 2), ("Observation", "o.ndjson", 2)])
    export(server, tmp_path / "full", full | {"transactionTime": FULL_TIME})
    # An incremental export deleting resources of two types in one Bundle (as the reference
    # server writes them: no id, one Bundle per deleted file, entries of any type).
    deletion = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Observation/o1"}},
        {"request": {"method": "DELETE", "url": "Patient/p1"}},
        {"request": {"method": "DELETE", "url": "Observation/o2/_history/3"}},
    ]}  # fmt: skip
    server.files["del.ndjson"] = ndjson(deletion)
    issue = {"severity": "information", "code": "informational", "diagnostics": "no changes"}
    server.files["err.ndjson"] = ndjson({"resourceType": "OperationOutcome", "issue": [issue]})
    incremental = server.manifest([], transactionTime=INCREMENTAL_TIME)
    incremental["deleted"] = [{"type": "Bundle", "url": server.file_url("del.ndjson")}]
    incremental["error"] = [{"type": "OperationOutcome", "url": server.file_url("err.ndjson")}]
    export(server, tmp_path / "incremental", incremental, "--since", FULL_TIME)

    database = tmp_path / "w.duckdb"
    assert land(tmp_path / "full", database)["Observation"] == ["2", "2", "0", "0", "0", "0"]
    # no meta on these resources: landing the same export again still changes nothing
    assert land(tmp_path / "full", database)["Observation"] == ["2", "0", "0", "0", "2", "0"]
    again = land(tmp_path / "incremental", database)
    assert again["Observation"] == ["2", "0", "0", "2", "0", "0"]
    assert again["Patient"] == ["1", "0", "0", "1", "0", "0"]
    assert "OperationOutcome" not in again  # diagnostics of the export, not data
    deleted_at = datetime.fromisoformat(INCREMENTAL_TIME)
    assert rows(database, "observation") == [
        ("o1", True, server.url, deleted_at),
        ("o2", True, server.url, deleted_at),
    ]
    assert [r[:3] for r in rows(database, "patient")] == [
        ("p1", True, server.url),
        ("p2", False, server.url),
    ]
    assert rows(database, "patient")[0][3] == deleted_at
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT COUNT(*) FROM fhir_raw._quarantine").fetchall() == [(0,)]


def test_a_truncated_gzip_file_is_named_and_every_other_file_lands(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    whole = gzip.compress(ndjson(*(resource("Patient", f"p{n}") for n in range(2000))))
    (folder / "Patient.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    (folder / "Observation.ndjson").write_bytes(ndjson(resource("Observation", "o1")))
    (folder / "Practitioner.ndjson").write_bytes(ndjson(resource("Practitioner", "d1")))
    env = {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    result = CliRunner().invoke(app, ["land", str(folder)], env=env)
    assert result.exit_code == 1
    assert "Aborted" not in result.output
    (problem,) = [line for line in result.stderr.splitlines() if "Patient.ndjson.gz" in line]
    assert "truncated or corrupt gzip" in problem
    landed = {line.split()[0]: line.split()[2] for line in result.stdout.splitlines()[1:]}
    assert landed["Observation"] == "1" and landed["Practitioner"] == "1"


def test_an_export_lands_valid_types_it_did_not_ask_for(server: BulkServer, tmp_path: Path) -> None:
    server.files |= {
        "p.ndjson": ndjson(resource("Patient", "p1")),
        "g.ndjson": ndjson(resource("Group", "g1"), resource("Group", "g2")),
    }
    manifest = server.manifest([("Patient", "p.ndjson", 1), ("Group", "g.ndjson", 2)])
    export(server, tmp_path / "out", manifest, "--type", "Patient")  # Group: not asked for
    landed = land(tmp_path / "out", tmp_path / "w.duckdb")
    assert landed["Group"][:2] == ["2", "2"] and landed["Patient"][:2] == ["1", "1"]


def test_a_deletion_line_past_the_line_bound_is_quarantined_as_too_long(tmp_path: Path) -> None:
    """FHIR_MAX_LINE_BYTES holds for ``deleted`` files as for the others: the long line is
    quarantined with why and its head (not re-read as truncated JSON), its neighbours land."""
    from fhir_assets.warehouse.export_folder import land_deletions
    from fhir_assets.warehouse.landing import LandingOptions
    from fhir_assets.warehouse.protocol import Provenance
    from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings, open_warehouse

    def deletion(*urls: str) -> dict:
        entries = [{"request": {"method": "DELETE", "url": url}} for url in urls]
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    long = deletion(*(f"Patient/p{n}" for n in range(40)))
    (tmp_path / "deleted").mkdir()
    path = tmp_path / "deleted" / "del.ndjson"
    path.write_bytes(ndjson(deletion("Patient/a"), long, deletion("Patient/b")))
    settings = WarehouseSettings(duckdb=DuckDBSettings(str(tmp_path / "w.duckdb")))
    provenance = Provenance("https://ehr.example.org/fhir", "s", datetime(2026, 1, 1, tzinfo=UTC))
    with open_warehouse(settings) as warehouse:
        options = LandingOptions(max_line_bytes=400)
        list(land_deletions(warehouse, [path], tmp_path, provenance, options))
        landed = warehouse.fetch("SELECT id, deleted FROM fhir_raw.patient ORDER BY id")
        quarantined = warehouse.fetch("SELECT line, error, length(raw) FROM fhir_raw._quarantine")
    assert landed == [("a", True), ("b", True)]
    size = len(orjson.dumps(long))
    [(line, error, head)] = quarantined
    assert (line, error) == (2, f"a line of {size} bytes, longer than 400 (not read whole)")
    assert head <= 1024
