"""The export sensor against a scripted Bulk Data server: one request per tick, the job kept in
the cursor across a daemon restart, a run requested per ready export, the next _since from the
server's transactionTime. Sensor contexts are built without an instance (PITFALLS.md)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from fhir_assets.assets.bulk import BulkExportResource
from fhir_assets.resources import FhirServerResource
from fhir_assets.sensors import ExportCursor, build_export_sensor, unfinished
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply


def tick(sensor: dg.SensorDefinition, cursor: str | None, server: BulkServer, folder: Path):  # type: ignore[no-untyped-def]
    resources = {
        "fhir": FhirServerResource(base_url=server.url),
        "bulk": BulkExportResource(folder=str(folder), types="Patient"),
    }
    context = dg.build_sensor_context(cursor=cursor, resources=resources)
    return sensor(context)


def kickoffs(server: BulkServer) -> list[str]:
    return [p for p in server.paths() if "$export" in p]


def test_export_sensor_kicks_off_polls_and_requests_a_run_per_export(
    tmp_path: Path,
) -> None:
    sensor = build_export_sensor(interval_s=3600)
    with BulkServer() as server:
        server.status = [
            Reply(202, headers={"X-Progress": "30% done", "Retry-After": "120"}),
            Reply(200, server.manifest([("Patient", "p.ndjson", 1)])),
        ]
        first = tick(sensor, None, server, tmp_path)
        assert "kicked off export-" in str(first.skip_reason)
        second = tick(sensor, first.cursor, server, tmp_path)
        assert "in progress (30% done)" in str(second.skip_reason)
        # A restarted daemon starts from the stored cursor: it polls, it does not kick off.
        third = tick(sensor, second.cursor, server, tmp_path)
        fourth = tick(sensor, third.cursor, server, tmp_path)
    assert len(kickoffs(server)) == 1
    assert server.paths("GET").count("/fhir/status") == 2
    (run,) = third.run_requests
    cursor = ExportCursor.from_json(first.cursor)
    assert run.partition_key == run.run_key == cursor.partition
    config = run.run_config["ops"]["fhir_bulk__export"]["config"]
    assert config == {
        "status_url": server.url + "/status",
        "started_at": cursor.started_at,
        "since": "",
    }
    (add,) = third.dynamic_partitions_requests
    assert add.partition_keys == [cursor.partition]
    assert ExportCursor.from_json(third.cursor).next_since == "2026-11-25T10:00:00.000Z"
    assert "next export in" in str(fourth.skip_reason)


def test_the_next_export_is_incremental_from_the_servers_transaction_time(
    tmp_path: Path,
) -> None:
    sensor = build_export_sensor(interval_s=0)
    done = ExportCursor(next_since="2026-11-25T10:00:00.000+00:00", last_kickoff=1.0)
    with BulkServer() as server:
        result = tick(sensor, done.to_json(), server, tmp_path)
    (kickoff,) = kickoffs(server)
    assert "_since=2026-11-25T10%3A00%3A00.000Z" in kickoff and "_type=Patient" in kickoff
    assert ExportCursor.from_json(result.cursor).since == "2026-11-25T10:00:00.000Z"


def test_a_failed_export_is_deleted_and_the_sensor_moves_on(tmp_path: Path) -> None:
    sensor = build_export_sensor(interval_s=3600)
    in_flight = ExportCursor(status_url=None, partition="export-x", last_kickoff=1.0)
    with BulkServer() as server:
        in_flight.status_url = server.url + "/status"
        issue = {"severity": "error", "code": "exception", "diagnostics": "out of disk"}
        server.status = [Reply(500, {"resourceType": "OperationOutcome", "issue": [issue]})]
        result = tick(sensor, in_flight.to_json(), server, tmp_path)
    assert "export failed" in str(result.skip_reason) and "out of disk" in str(result.skip_reason)
    assert server.paths("DELETE") == ["/fhir/status"]
    assert ExportCursor.from_json(result.cursor).status_url is None


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"a": dg.AssetPartitionStatus.MATERIALIZED, "b": None}, ["b"]),
        ({"a": dg.AssetPartitionStatus.FAILED, "b": dg.AssetPartitionStatus.IN_PROGRESS}, ["a"]),
        ({"a": dg.AssetPartitionStatus.MATERIALIZED}, []),
    ],
)
def test_unfinished_partitions_are_missing_or_failed_ones(
    statuses: dict[str, dg.AssetPartitionStatus | None], expected: list[str]
) -> None:
    assert unfinished(statuses) == expected


def test_definitions_carry_the_bulk_job_partitions_and_sensors() -> None:
    from fhir_assets.assets.defs import build_all_defs
    from fhir_assets.settings import Settings

    defs = build_all_defs(Settings.from_environ({"FHIR_BASE_URL": "http://127.0.0.1:9/fhir"}))
    assert defs.resolve_job_def("bulk_land").partitions_def.name == "fhir_bulk_export"  # type: ignore[union-attr]
    assert {s.name for s in defs.sensors or ()} >= {
        "fhir_bulk_export_sensor",
        "fhir_bulk_backfill_sensor",
    }
