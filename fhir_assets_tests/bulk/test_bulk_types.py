"""The bulk asset out of the box on a server that lacks some catalog types (scripted Bulk Data
server): it exports the catalog types the CapabilityStatement lists and names the others;
``handling=lenient`` on request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest

from fhir_assets.assets.bulk import EXPORTS, BulkExportResource, build_bulk_asset
from fhir_assets.fhir import FhirClient
from fhir_assets.fhir.bulk import BulkClient, BulkOptions
from fhir_assets.resources import FhirServerResource
from fhir_assets.sensors import ExportCursor, kick_off
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply, Seen
from fhir_assets_tests.bulk.test_export_scripted import patients

LISTED = ["Patient", "Observation", "Binary"]  # Binary: listed, but no catalog type


@pytest.fixture
def server() -> Iterator[BulkServer]:
    with BulkServer() as s:
        s.capability["rest"] = [{"mode": "server", "resource": [{"type": t} for t in LISTED]}]
        # Like the reference server: a kick-off naming a type it lacks is refused.
        yield s


def kickoff(server: BulkServer) -> Seen:
    (seen,) = [s for s in server.seen if "$export" in s.path]
    return seen


def exported_types(server: BulkServer) -> list[str]:
    query = parse_qs(urlsplit(kickoff(server).path).query)
    return query["_type"][0].split(",")


def test_the_asset_exports_the_types_the_server_lists(
    server: BulkServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.files["p.ndjson"] = patients(3)
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 3)]))]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORTS.name, ["export-1"])
    resources = {
        "fhir": FhirServerResource(base_url=server.url),
        "bulk": BulkExportResource(folder=str(tmp_path / "exports"), max_wait_s=0),
        "landing": DuckDBWarehouseResource(database=str(tmp_path / "w.duckdb")),
    }
    result = dg.materialize(
        [build_bulk_asset()], partition_key="export-1", resources=resources, instance=instance
    )
    assert result.success
    assert exported_types(server) == ["Patient", "Observation"]
    assert "MedicationAdministration" in caplog.text and "not exported" in caplog.text


def test_the_sensor_kicks_off_the_listed_types_leniently_on_request(server: BulkServer) -> None:
    bulk = BulkExportResource(folder="unused", lenient=True)
    exporter = BulkClient(FhirClient(server.url), bulk.options())
    kick_off(bulk, exporter, ExportCursor())
    assert exported_types(server) == ["Patient", "Observation"]
    assert kickoff(server).headers["Prefer"] == "respond-async, handling=lenient"


def test_configured_types_are_sent_as_they_are_without_asking(server: BulkServer) -> None:
    bulk = BulkExportResource(folder="unused", types="Encounter")
    exporter = BulkClient(FhirClient(server.url), BulkOptions())
    kick_off(bulk, exporter, ExportCursor())
    assert exported_types(server) == ["Encounter"]
    assert "/fhir/metadata" not in server.paths()
    assert kickoff(server).headers["Prefer"] == "respond-async"
