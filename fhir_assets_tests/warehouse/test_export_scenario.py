"""The export scenario from a server that sends no ``meta`` (as the SMART reference server does),
on DuckDB and on the Snowflake emulator: full export -> land -> incremental export with changes
and mixed-type deletions -> land; then the current rows equal the server's current resources
exactly (ids, versions, content hashes). The exports run against the scripted Bulk Data server;
the landing is the bulk asset's ``land_export``; each export is landed twice (idempotent)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_assets.assets.bulk import land_export
from fhir_assets.fhir.bulk import ExportRequest, run_export
from fhir_assets.warehouse.export_folder import export_origin
from fhir_assets.warehouse.landing import LandingOptions
from fhir_assets.warehouse.protocol import Provenance, Warehouse
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply
from fhir_assets_tests.bulk.test_export_scripted import bulk_client

TYPES = ("Patient", "Observation")
Server = dict[tuple[str, str], dict[str, Any]]


def observation(n: int, value: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{n}", "status": "final",
            "code": {"text": "weight"}, "subject": {"reference": f"Patient/p{n % 5}"},
            "valueQuantity": {"value": value, "unit": "kg"}}  # fmt: skip


def patient(n: int, family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{n}", "name": [{"family": family}]}


def digest(resource: Any) -> str:
    parsed = json.loads(resource) if isinstance(resource, str) else resource
    return hashlib.sha256(orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)).hexdigest()


def serve(server: BulkServer, name: str, resources: Server, time: str, deleted: list[str]) -> None:
    """The next export: ``resources`` as one file per type, ``deleted`` (Type/id) in one Bundle."""
    outputs = []
    for kind in TYPES:
        lines = [orjson.dumps(r) + b"\n" for (t, _), r in sorted(resources.items()) if t == kind]
        server.files[f"{name}-{kind}.ndjson"] = b"".join(lines)
        outputs.append((kind, f"{name}-{kind}.ndjson", len(lines)))
    manifest = server.manifest(outputs, transactionTime=time)
    if deleted:
        entries = [{"request": {"method": "DELETE", "url": url}} for url in deleted]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        server.files[f"{name}-deleted.ndjson"] = orjson.dumps(bundle) + b"\n"
        manifest["deleted"] = [{"type": "Bundle", "url": server.file_url(f"{name}-deleted.ndjson")}]
    server.status = [Reply(200, manifest)]


def export_and_land(
    server: BulkServer, warehouse: Warehouse, folder: Path, since: str | None
) -> None:
    result = run_export(bulk_client(server), ExportRequest(types=TYPES, since=since), folder)
    origin = export_origin(folder)
    assert origin is not None and origin.source_server == server.url
    for attempt in ("first", "again"):  # a re-run of the same export changes nothing
        # one sync id per export, as the bulk asset's partition key and `land`'s default
        provenance = Provenance(origin.source_server, origin.sync_id,
                                datetime.now(UTC), origin.transaction_time)  # fmt: skip
        landed = land_export(warehouse, result, provenance, LandingOptions(batch_rows=7))
        if attempt == "again":
            assert [(r.landed, r.updated, r.deleted, r.quarantined) for r in landed] == [
                (0, 0, 0, 0)
            ] * len(landed)


def current(warehouse: Warehouse) -> dict[tuple[str, str], tuple[str | None, str]]:
    rows = {}
    for kind in TYPES:
        query = f"SELECT id, version_id, resource FROM fhir_raw.{kind.lower()} WHERE NOT deleted"  # noqa: S608
        for rid, version, resource in warehouse.fetch(query):
            rows[(kind, rid)] = (version, digest(resource))
    return rows


@pytest.fixture
def server() -> Iterator[BulkServer]:
    with BulkServer() as s:
        yield s


def test_export_land_incremental_land_equals_the_server_without_meta(
    server: BulkServer, warehouse: Warehouse, tmp_path: Path
) -> None:
    resources: Server = {("Patient", f"p{n}"): patient(n, "Doe") for n in range(5)}
    resources |= {("Observation", f"o{n}"): observation(n, 70.0) for n in range(12)}
    serve(server, "full", resources, "2026-11-25T10:00:00.000Z", [])
    export_and_land(server, warehouse, tmp_path / "full", None)

    changed = {("Patient", "p1"): patient(1, "Roe"), ("Observation", "o2"): observation(2, 71.5),
               ("Observation", "o12"): observation(12, 80.0)}  # fmt: skip
    gone = [("Observation", "o4"), ("Patient", "p3"), ("Observation", "o7")]
    resources |= changed
    for key in gone:
        del resources[key]
    serve(server, "incremental", changed, "2026-11-26T10:00:00.000Z", [f"{t}/{i}" for t, i in gone])
    export_and_land(server, warehouse, tmp_path / "incremental", "2026-11-25T10:00:00.000Z")

    expected = {key: (None, digest(r)) for key, r in resources.items()}
    assert current(warehouse) == expected
