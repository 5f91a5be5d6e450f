"""A hostile server's manifest (injected and traversing types, files and
``next`` links on another origin) lands nothing outside ``fhir_raw.<known type>`` and writes
nothing outside the export folder: through the library, a real ``dg.materialize`` and a real
CLI run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import orjson
import pytest

from fhir_assets.assets.bulk import EXPORTS, BulkExportResource, build_bulk_asset
from fhir_assets.fhir import ServerSettings, connect
from fhir_assets.fhir.bulk import BulkClient, ExportRequest, run_export
from fhir_assets.fhir.client import FhirClient, ForeignLinkError
from fhir_assets.fhir.names import UnsafeNameError
from fhir_assets.resources import FhirServerResource
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets_tests.security.hostile import CLIENT_ID, SECRET, TOKEN, HostileServer

PATIENT = (
    orjson.dumps(
        {
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00.000Z"},
        }
    )
    + b"\n"
)


def hostile_types(tmp_path: Path) -> dict[str, str]:
    pwned = tmp_path / "pwned.txt"
    return {
        "drop": "patient (id int); DROP TABLE fhir_raw.patient; "
        "CREATE TABLE fhir_raw.pwned (x int); --",
        "copy": f"x (id int); copy (select 'owned' as x) to '{pwned}'; --",
        "traverse": "x/../../../../somewhere/else/pwned",
        "traverse-r4": "Patient/../../../../../pwned",
        "full-width": "\uff2fbservation",
    }


@pytest.fixture
def hostile() -> Any:
    with HostileServer() as server:
        server.files["p.ndjson"] = PATIENT
        yield server


def files_outside(tmp_path: Path, *allowed: Path) -> list[Path]:
    return [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not any(p.is_relative_to(a) for a in allowed)
    ]


def raw_tables(database: Path) -> set[str]:
    if not database.exists():
        return set()
    with duckdb.connect(str(database)) as con:
        rows = con.execute("SELECT table_schema, table_name FROM information_schema.tables")
        return {f"{schema}.{name}" for schema, name in rows.fetchall()}


@pytest.mark.parametrize("kind", sorted(hostile_types(Path("/x"))))
def test_a_hostile_manifest_type_is_refused_before_any_file(
    hostile: HostileServer, tmp_path: Path, kind: str
) -> None:
    bad = hostile_types(tmp_path)[kind]
    hostile.manifest = hostile.output_manifest(
        [("Patient", hostile.file_url("p.ndjson")), (bad, hostile.file_url("p.ndjson"))]
    )
    export = tmp_path / "export"
    with BulkClient(FhirClient(hostile.url)) as bulk, pytest.raises(UnsafeNameError) as raised:
        run_export(bulk, ExportRequest(types=("Patient",)), export)

    assert repr(bad)[:30] in str(raised.value)
    assert not [s for s in hostile.seen if s.path.startswith("/files/")]
    assert files_outside(tmp_path, export) == []
    assert not (tmp_path / "pwned.txt").exists()


def test_files_on_another_origin_come_without_the_token(tmp_path: Path) -> None:
    # Pre-signed storage elsewhere is legitimate (Bulk Data IG): fetched, but never with a token.
    with HostileServer() as fhir, HostileServer() as storage:
        storage.files["p.ndjson"] = PATIENT
        fhir.manifest = fhir.output_manifest([("Patient", storage.file_url("p.ndjson"))])
        fhir.issue_token = True
        settings = ServerSettings(
            base_url=fhir.url,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            token_url=fhir.origin + "/token",
            scopes="system/Patient.read",
        )
        with connect(settings) as client, BulkClient(client) as bulk:
            result = run_export(bulk, ExportRequest(types=("Patient",)), tmp_path / "export")
    assert [t for t, _ in result.output_files()] == ["Patient"]
    assert any(s.headers.get("Authorization") == f"Bearer {TOKEN}" for s in fhir.seen)
    assert storage.seen and all("Authorization" not in s.headers for s in storage.seen)


def test_a_manifest_page_on_another_origin_is_refused(tmp_path: Path) -> None:
    with HostileServer() as fhir, HostileServer() as other:
        fhir.manifest = fhir.output_manifest([]) | {
            "link": [{"relation": "next", "url": other.url + "/status"}]
        }
        with BulkClient(FhirClient(fhir.url)) as bulk, pytest.raises(Exception) as raised:
            run_export(bulk, ExportRequest(types=("Patient",)), tmp_path / "export")
    assert "another origin" in str(raised.value) and not other.seen


def test_a_search_next_link_on_another_origin_is_refused_naming_both(
    hostile: HostileServer,
) -> None:
    with HostileServer() as other:
        hostile.next_url = other.url + "/Patient?page=2"
        with pytest.raises(ForeignLinkError) as raised:
            list(FhirClient(hostile.url).search("Patient"))
    assert other.origin.removeprefix("http://") in str(raised.value)
    assert hostile.origin.removeprefix("http://") in str(raised.value)
    assert not other.seen


@pytest.mark.parametrize("kind", ["drop", "copy", "traverse"])
def test_a_materialize_lands_nothing_outside_known_tables(
    hostile: HostileServer, tmp_path: Path, kind: str
) -> None:
    database, exports = tmp_path / "w.duckdb", tmp_path / "exports"
    with duckdb.connect(str(database)) as con:  # a table the attack would drop
        con.execute("CREATE SCHEMA fhir_raw; CREATE TABLE fhir_raw.patient (id VARCHAR)")
    hostile.manifest = hostile.output_manifest(
        [
            ("Patient", hostile.file_url("p.ndjson")),
            (hostile_types(tmp_path)[kind], hostile.file_url("p.ndjson")),
        ]
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(EXPORTS.name, ["p1"])
        result = dg.materialize(
            [build_bulk_asset()],
            partition_key="p1",
            resources={
                "fhir": FhirServerResource(base_url=hostile.url),
                "bulk": BulkExportResource(folder=str(exports), types="Patient"),
                "landing": DuckDBWarehouseResource(database=str(database)),
            },
            instance=instance,
            raise_on_error=False,
        )
        failure = str(result.get_step_failure_events()[0].event_specific_data)
    assert not result.success and "UnsafeNameError" in failure
    assert raw_tables(database) == {"fhir_raw.patient"}
    assert files_outside(tmp_path, exports, database, tmp_path / "dagster") == []
    assert not (tmp_path / "pwned.txt").exists()


def test_a_cli_export_writes_nothing_outside_its_folder(
    hostile: HostileServer, tmp_path: Path
) -> None:
    traverse = hostile_types(tmp_path)["traverse"]
    hostile.manifest = hostile.output_manifest([(traverse, hostile.file_url("p.ndjson"))])
    out = tmp_path / "deep" / "er" / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    run = subprocess.run(
        [str(Path(sys.executable).with_name("fhir-assets")), "export", "--out", str(out),
         "--base-url", hostile.url, "--type", "Patient"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert "not an R4/R4B resource type" in run.stderr and repr(traverse) in run.stderr
    assert files_outside(tmp_path, out) == []
