"""Sensor -> export partition -> landing in DuckDB against the sandbox: a run that died
mid-download resumes without a second kick-off, re-landing changes nothing, and the backfill
sensor relaunches a partition that never ran."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fhir_assets.assets.bulk import (
    BULK_KEY,
    EXPORTS,
    BulkExportConfig,
    BulkExportResource,
    build_bulk_asset,
    seed_state,
)
from fhir_assets.fhir import FhirClient
from fhir_assets.fhir.bulk import BulkClient, BulkOptions, ExportError, run_export
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.sensors import BULK_OP, build_backfill_sensor, build_export_sensor
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets_tests.bulk.conftest import SCOPE
from fhir_assets_tests.proxy import Fault, FaultProxy

TYPES = ["Patient", "Encounter", "Observation", "Condition", "Procedure"]


def wait_for_run(sensor: dg.SensorDefinition, resources: dict[str, Any]) -> dg.RunRequest:
    cursor = None
    deadline = time.monotonic() + 120  # the sandbox's export job, on a loaded machine
    while time.monotonic() < deadline:
        result = sensor(dg.build_sensor_context(cursor=cursor, resources=resources))
        cursor = result.cursor
        if result.run_requests:
            return result.run_requests[0]
        time.sleep(0.25)
    raise AssertionError("the export never became ready")


def die_mid_download(
    fhir: FhirServerResource, bulk: BulkExportResource, run: dg.RunRequest
) -> None:
    """What a run killed mid-download leaves behind: some files done, the job not deleted."""
    config = BulkExportConfig(**run.run_config["ops"][BULK_OP]["config"])
    folder = bulk.folder_for(str(run.partition_key))
    request = seed_state(folder, bulk.request(config.since or None), config)
    with fhir.get_client() as client, BulkClient(client, BulkOptions(attempts=0)) as exporter:
        with pytest.raises(ExportError):
            run_export(exporter, request, folder)


def rows(landing: DuckDBWarehouseResource, resource_type: str) -> int:
    with landing.open_warehouse() as warehouse:
        query = f"SELECT count(*) FROM fhir_raw.{resource_type.lower()} WHERE NOT deleted"  # noqa: S608
        return int(warehouse.fetch(query)[0][0])


@pytest.mark.slow
def test_sensor_run_lands_the_export_once_even_after_a_run_died(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    landing = DuckDBWarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    bulk = BulkExportResource(folder=str(tmp_path / "exports"), types=",".join(TYPES), max_wait_s=1)
    with FaultProxy(sandbox.base_url, seed=5) as proxy:
        fhir = FhirServerResource(
            base_url=proxy.url,
            client_id=sandbox.client.client_id,
            private_key_path=str(sandbox.client.private_key_path),
            scopes=SCOPE,
            token_url=sandbox.token_url,
        )
        run = wait_for_run(build_export_sensor(interval_s=3600), {"fhir": fhir, "bulk": bulk})
        failing = proxy.add(Fault("status", status=503, every=2, path_contains="bulk-files"))
        die_mid_download(fhir, bulk, run)
        proxy.clear()
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(EXPORTS.name, [str(run.partition_key)])
        resources = {"fhir": fhir, "bulk": bulk, "landing": landing}
        outcomes = [
            dg.materialize(
                [build_bulk_asset()],
                partition_key=run.partition_key,
                run_config=run.run_config,
                resources=resources,
                instance=instance,
            )
            for _ in range(2)
        ]
        kickoffs = [status for _, path, status in proxy.requests if path.endswith("$export")]
        deletes = [status for method, _, status in proxy.requests if method == "DELETE"]
    assert failing.fired >= 1 and kickoffs == [202] and deletes == [202]
    expected = sandbox.counts(TYPES)
    assert {t: rows(landing, t) for t in TYPES} == expected
    first, second = (
        {k: v.value for e in o.get_asset_materialization_events() if e.asset_key == BULK_KEY
         for k, v in e.materialization.metadata.items()}
        for o in outcomes
    )  # fmt: skip
    assert first["resources"] == first["landed"] == sum(expected.values())
    assert second["unchanged"] == sum(expected.values()) and second["landed"] == 0

    instance.add_dynamic_partitions(EXPORTS.name, ["export-never-ran"])
    backfill = build_backfill_sensor()(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in backfill.run_requests] == ["export-never-ran"]


def test_deleted_files_mixing_types_become_tombstones_of_each_type(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import orjson

    from fhir_assets.assets.bulk import land_export
    from fhir_assets.fhir.bulk import ExportRequest
    from fhir_assets.warehouse.landing import LandingOptions
    from fhir_assets.warehouse.protocol import Provenance
    from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply

    def line(resource: dict) -> bytes:
        return orjson.dumps(resource) + b"\n"

    meta = {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00.000Z"}
    deletes = [
        {"request": {"method": "DELETE", "url": u}} for u in ("Patient/p1", "Observation/o1")
    ]
    with BulkServer() as server:
        patient = {"resourceType": "Patient", "meta": meta}
        observation = {"resourceType": "Observation", "id": "o1", "status": "final", "meta": meta}
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": deletes}
        server.files |= {
            "p.ndjson": line(patient | {"id": "p0"}) + line(patient | {"id": "p1"}),
            "o.ndjson": line(observation),
            "d.ndjson": line(bundle) + b"{broken\n",
        }
        manifest = server.manifest([("Patient", "p.ndjson", 2), ("Observation", "o.ndjson", 1)])
        manifest["deleted"] = [{"type": "Bundle", "url": server.file_url("d.ndjson")}]
        server.status = [Reply(200, manifest)]
        with BulkClient(FhirClient(server.url)) as bulk:
            result = run_export(bulk, ExportRequest(), tmp_path / "export")
    landing = DuckDBWarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    moment = datetime(2026, 11, 25, 10, tzinfo=UTC)
    with landing.open_warehouse() as warehouse:
        land_export(
            warehouse, result, Provenance("http://x/fhir", "e1", moment, moment), LandingOptions()
        )
        patients = sorted(warehouse.fetch("SELECT id, deleted FROM fhir_raw.patient"))
        observations = warehouse.fetch("SELECT id, deleted FROM fhir_raw.observation")
        quarantined = warehouse.fetch("SELECT source, line FROM fhir_raw._quarantine")
    assert patients == [("p0", False), ("p1", True)]
    assert observations == [("o1", True)]
    assert quarantined == [("deleted/00002.Bundle.ndjson", 2)]


def test_bulk_export_records_a_materialization_per_raw_asset(
    sandbox: Sandbox, tmp_path: Path
) -> None:

    landing = DuckDBWarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    bulk = BulkExportResource(folder=str(tmp_path / "exports"), types="Patient,Observation")
    fhir = FhirServerResource(
        base_url=sandbox.base_url,
        client_id=sandbox.client.client_id,
        private_key_path=str(sandbox.client.private_key_path),
        scopes=SCOPE,
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORTS.name, ["by-hand"])
    result = dg.materialize(
        [build_bulk_asset()],
        partition_key="by-hand",
        resources={"fhir": fhir, "bulk": bulk, "landing": landing},
        instance=instance,
    )
    assert result.success
    expected = sandbox.counts(["Patient", "Observation"])
    for resource_type, n in expected.items():
        key = dg.AssetKey(["fhir_raw", resource_type.lower()])
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        assert metadata["landed"] == metadata["source_count"] == n
        assert metadata["dagster/row_count"] == n
        assert metadata["source_server"] == sandbox.base_url
    # Encounter was not exported, so its raw asset records nothing
    assert instance.get_latest_materialization_event(dg.AssetKey(["fhir_raw", "encounter"])) is None


def test_the_bulk_asset_quarantines_lines_longer_than_the_settings_max_line_bytes(
    tmp_path: Path,
) -> None:
    import orjson

    from fhir_assets.assets.defs import landing_options
    from fhir_assets.settings import Settings
    from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply

    settings = Settings.from_environ({"FHIR_BASE_URL": "http://127.0.0.1/fhir",
                                      "FHIR_MAX_LINE_BYTES": "300"})  # fmt: skip
    meta = {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00.000Z"}
    short = {"resourceType": "Patient", "id": "p0", "meta": meta}
    long = short | {"id": "p1", "name": [{"text": "x" * 400}]}
    landing = DuckDBWarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    with BulkServer() as server:
        server.files["p.ndjson"] = orjson.dumps(short) + b"\n" + orjson.dumps(long) + b"\n"
        server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 2)]))]
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(EXPORTS.name, ["by-hand"])
        resources = {
            "fhir": FhirServerResource(base_url=server.url, server_profile="generic"),
            "bulk": BulkExportResource(folder=str(tmp_path / "x"), types="Patient"),
            "landing": landing,
        }
        result = dg.materialize(
            [build_bulk_asset(landing_options(settings.sync))],
            partition_key="by-hand",
            resources=resources,
            instance=instance,
        )
    assert result.success
    with landing.open_warehouse() as warehouse:
        landed = warehouse.fetch("SELECT id FROM fhir_raw.patient")
        quarantined = warehouse.fetch("SELECT line, error FROM fhir_raw._quarantine")
    assert landed == [("p0",)]
    assert [(line, "FHIR_MAX_LINE_BYTES=300" in reason) for line, reason in quarantined] == [
        (2, True)
    ]
