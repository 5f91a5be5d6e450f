"""The bulk asset with default settings on a server like the SMART reference server (scripted
Bulk Data server): its CapabilityStatement omits types it exports, which must land all the same;
a configured type that is not exported fails the WARN check ``requested_types_exported``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import duckdb
import orjson
import pytest

from fhir_assets.assets.bulk import (
    BULK_KEY,
    EXPORTED_CHECK,
    EXPORTS,
    BulkExportResource,
    build_bulk_asset,
)
from fhir_assets.fhir import FhirClient
from fhir_assets.fhir.bulk import BulkClient
from fhir_assets.resources import FhirServerResource
from fhir_assets.sensors import ExportCursor, kick_off
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply, Seen

LISTED = ["Patient", "Observation"]  # what the CapabilityStatement lists
EXPORTED = {"Patient": 3, "Observation": 2, "Claim": 2, "CarePlan": 1, "Group": 1}


def ndjson(kind: str, n: int) -> bytes:
    return b"".join(orjson.dumps({"resourceType": kind, "id": f"{kind}{i}"}) + b"\n"
                    for i in range(n))  # fmt: skip


@pytest.fixture
def server() -> Iterator[BulkServer]:
    with BulkServer() as s:
        s.capability["rest"] = [{"mode": "server", "resource": [{"type": t} for t in LISTED]}]
        for kind, n in EXPORTED.items():
            s.files[f"{kind}.ndjson"] = ndjson(kind, n)
        outputs = [(kind, f"{kind}.ndjson", n) for kind, n in EXPORTED.items()]
        s.status = [Reply(200, s.manifest(outputs))]
        yield s


def kickoff(server: BulkServer) -> Seen:
    (seen,) = [s for s in server.seen if "$export" in s.path]
    return seen


def materialize(server: BulkServer, tmp_path: Path, **bulk: str) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORTS.name, ["export-1"])
    resources = {
        "fhir": FhirServerResource(base_url=server.url),
        "bulk": BulkExportResource(folder=str(tmp_path / "exports"), max_wait_s=0, **bulk),
        "landing": DuckDBWarehouseResource(database=str(tmp_path / "w.duckdb")),
    }
    return dg.materialize(
        [build_bulk_asset()], partition_key="export-1", resources=resources, instance=instance
    )


def test_by_default_every_exported_type_lands_listed_or_not(
    server: BulkServer, tmp_path: Path
) -> None:
    result = materialize(server, tmp_path)
    assert result.success
    assert "_type" not in parse_qs(urlsplit(kickoff(server).path).query)  # the server's full set
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        landed = {
            kind: con.execute(f"SELECT COUNT(*) FROM fhir_raw.{kind.lower()}").fetchall()[0][0]  # noqa: S608
            for kind in EXPORTED
        }
    assert landed == EXPORTED
    # every landed table shows in Dagster, in the catalog (Claim) or not (Group)
    events = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert set(events) == {"fhir_bulk/export", *(f"fhir_raw/{k.lower()}" for k in EXPORTED)}
    group = events["fhir_raw/group"]
    assert group["dagster/row_count"].value == 1 and group["landed"].value == 1
    assert group["dagster/table_name"].value.endswith("fhir_raw.group")
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.asset_key == BULK_KEY


def test_a_requested_type_that_is_not_exported_fails_the_warn_check(
    server: BulkServer, tmp_path: Path
) -> None:
    result = materialize(server, tmp_path, types="Patient,Goal,Claim")
    assert result.success  # a WARN check, not a failed run
    query = parse_qs(urlsplit(kickoff(server).path).query)
    assert query["_type"] == ["Patient,Goal,Claim"]  # Goal and Claim are not listed: still asked
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == EXPORTED_CHECK and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["missing_types"].value == ["Goal"]
    (export,) = [e for e in result.get_asset_materialization_events() if e.asset_key == BULK_KEY]
    assert export.materialization.metadata["missing_types"].value == ["Goal"]


def test_the_sensor_kicks_off_the_full_set_leniently_on_request(server: BulkServer) -> None:
    bulk = BulkExportResource(folder="unused", lenient=True)
    kick_off(bulk, BulkClient(FhirClient(server.url), bulk.options()), ExportCursor())
    assert "_type" not in parse_qs(urlsplit(kickoff(server).path).query)
    assert "/fhir/metadata" not in server.paths()
    assert kickoff(server).headers["Prefer"] == "respond-async, handling=lenient"
