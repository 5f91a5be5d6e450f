"""Bulk export against the real sandbox (sekmet), directly and through the fault proxy: counts and
content equal what searches return, nothing lost or duplicated, one kick-off per export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from fhir_assets.catalog import CATALOG
from fhir_assets.fhir import FhirClient
from fhir_assets.fhir.bulk import ExportGoneError, ExportRequest, Progress, run_export
from fhir_assets.fhir.ndjson import BadLine, Record, parse
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.bulk.conftest import (
    TrustingTokens,
    bulk_client,
    by_key,
    read_export,
    searched,
    token_source,
)
from fhir_assets_tests.proxy import Fault, FaultProxy

SOME_TYPES = ("Patient", "Encounter", "Observation", "Condition")


def put(client: FhirClient, resource: dict) -> None:
    path = f"{resource['resourceType']}/{resource['id']}"
    client.request(
        "PUT", path, data=orjson.dumps(resource), headers={"Content-Type": "application/fhir+json"}
    )


def test_system_export_equals_the_servers_content(sandbox: Sandbox, tmp_path: Path) -> None:
    with bulk_client(sandbox) as bulk:
        result = run_export(bulk, ExportRequest(), tmp_path)
    exported = by_key(read_export(result.output_files()))
    assert exported == searched(sandbox, sorted(result.counts()))
    catalog = sandbox.counts([spec.resource_type for spec in CATALOG])
    assert {t: n for t, n in catalog.items() if n} == {
        t: n for t, n in result.counts().items() if t in catalog
    }
    assert result.fatal == () and result.bad_lines() == []
    assert result.manifest.transaction_time.endswith("Z")


def test_patient_export_equals_the_compartment_types(sandbox: Sandbox, tmp_path: Path) -> None:
    with bulk_client(sandbox) as bulk:
        result = run_export(bulk, ExportRequest("patient"), tmp_path)
    assert {"Patient", "Encounter", "Observation"} <= set(result.counts())
    assert not {"Organization", "Practitioner", "Location"} & set(result.counts())
    assert by_key(read_export(result.output_files())) == searched(sandbox, sorted(result.counts()))


def test_group_export_holds_the_members_data_only(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    server = make_sandbox()
    with server.fhir_client() as client:
        members = sorted(p["id"] for p in client.search("Patient", {"_count": "500"}))[:5]
        put(client, {
            "resourceType": "Group", "id": "cohort", "type": "person", "actual": True,
            "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
        })  # fmt: skip
    with bulk_client(server) as bulk:
        result = run_export(bulk, ExportRequest("group", "cohort", SOME_TYPES), tmp_path)
    refs = ",".join(f"Patient/{m}" for m in members)
    expected = searched(server, ["Patient"], {"_id": ",".join(members)})
    expected |= searched(server, ["Encounter", "Observation", "Condition"], {"patient": refs})
    assert by_key(read_export(result.output_files())) == expected
    assert result.counts()["Patient"] == 5


def test_type_filter_and_since_select_what_changed(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    server = make_sandbox()
    with bulk_client(server) as bulk:
        request = ExportRequest(
            types=("Patient", "Observation"), type_filters=("Observation?status=final",)
        )
        first = run_export(bulk, request, tmp_path / "full")
        with server.fhir_client() as client:
            patient = next(client.search("Patient", {"_count": "1"}))
            put(
                client,
                patient | {"gender": "unknown" if patient.get("gender") != "unknown" else "other"},
            )
        since = first.manifest.transaction_time
        changed = run_export(
            bulk, ExportRequest(types=("Patient",), since=since), tmp_path / "since"
        )
    expected = searched(server, ["Observation"], {"status": "final"})
    exported = by_key(read_export(first.output_files()))
    assert {k: v for k, v in exported.items() if k[0] == "Observation"} == expected
    assert first.counts()["Patient"] == server.counts(["Patient"])["Patient"]
    assert [r["id"] for r in read_export(changed.output_files())] == [patient["id"]]


STATUS = {"path_contains": "bulk-status", "method": "GET"}
FAULTS = {
    "429 on kick-off": [Fault("status", status=429, retry_after=1, count=2, path_contains="$")],
    "5xx while polling": [
        Fault("status", status=503, retry_after=1, count=2, **STATUS),  # type: ignore[arg-type]
        Fault("html", status=502, count=1, **STATUS),  # type: ignore[arg-type]
    ],
    "dropped mid-file": [
        Fault("truncate", count=3, path_contains="bulk-files"),
        Fault("drop", every=2, count=2, path_contains="bulk-files"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_export_survives_faults_with_nothing_lost_or_duplicated(
    sandbox: Sandbox, tmp_path: Path, faults: list[Fault]
) -> None:
    with FaultProxy(sandbox.base_url, seed=3) as proxy:
        for fault in faults:
            proxy.add(fault)
        with bulk_client(sandbox, proxy.url) as bulk:
            result = run_export(bulk, ExportRequest(types=SOME_TYPES), tmp_path)
        kickoffs = [s for m, p, s in proxy.requests if "$export" in p and s == 202]
    assert all(f.fired == (f.count or 0) for f in faults)
    assert len(kickoffs) == 1
    assert by_key(read_export(result.output_files())) == searched(sandbox, list(SOME_TYPES))


def test_a_token_expiring_mid_download_is_refreshed(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    server = make_sandbox(token_lifetime=5)
    tokens = TrustingTokens(token_source(server))
    types = (*SOME_TYPES, "Procedure", "Immunization", "MedicationRequest")
    with FaultProxy(server.base_url, seed=1) as proxy:
        proxy.add(Fault("slow", delay_s=1.0, path_contains="bulk-files"))
        with bulk_client(server, proxy.url, tokens, max_connections=1) as bulk:
            result = run_export(bulk, ExportRequest(types=types), tmp_path)
        refused = proxy.statuses()[401]
    assert refused >= 1 and tokens.fetched >= 2
    assert by_key(read_export(result.output_files())) == searched(server, list(types))


def test_a_corrupt_line_is_kept_and_reported_not_dropped(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    server = make_sandbox()
    assert server._workdir is not None
    exports = server._workdir / "bulk"

    def corrupt(progress: Progress) -> None:
        if progress.phase != "manifest":
            return
        (served,) = exports.glob("*/Patient.ndjson")
        lines = served.read_bytes().splitlines(keepends=True)
        lines[2] = lines[2][:40] + b"\n"  # the server's file now holds a cut line 3
        served.write_bytes(b"".join(lines))

    with bulk_client(server) as bulk:
        result = run_export(bulk, ExportRequest(types=("Patient",)), tmp_path, corrupt)
    ((name, line, reason),) = result.bad_lines()
    assert (line, reason.split(" (")[0]) == (3, "not JSON")
    items = list(parse(result.folder / name, "Patient"))
    assert len(items) == result.counts()["Patient"] == server.counts(["Patient"])["Patient"]
    (bad,) = [i for i in items if isinstance(i, BadLine)]
    assert bad.line == 3 and len(bad.raw) == 40
    good = by_key(i.resource for i in items if isinstance(i, Record))
    expected = searched(server, ["Patient"])
    assert len(good) == len(expected) - 1 and all(expected[k] == v for k, v in good.items())


class Crash(Exception):
    pass


def test_a_job_lost_by_a_server_restart_is_reported_then_started_anew(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    server = make_sandbox()
    request = ExportRequest(types=("Patient",))

    def crash_after_manifest(progress: Progress) -> None:
        if progress.phase == "manifest":
            raise Crash

    with bulk_client(server) as bulk, pytest.raises(Crash):
        run_export(bulk, request, tmp_path, crash_after_manifest)
    server.stop()
    server.start()  # sekmet keeps no jobs across restarts
    with bulk_client(server) as bulk:
        with pytest.raises(ExportGoneError, match="HTTP 404"):
            run_export(bulk, request, tmp_path)
        result = run_export(bulk, request, tmp_path)
    assert result.counts() == server.counts(["Patient"])
