"""Bulk export client against a scripted Bulk Data server: waits, paging, error and deleted files,
redirects, gzip, resume, refusals. Real HTTP on 127.0.0.1; time and sleep are injected."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import orjson
import pytest

from fhir_assets.fhir import BearerAuth, ConfigurationError, FhirClient, Token, TokenSource
from fhir_assets.fhir.bulk import (
    BulkClient,
    BulkOptions,
    ExportError,
    ExportRequest,
    ExportTooSoonError,
    Manifest,
    run_export,
)
from fhir_assets.fhir.ndjson import Tombstone, tombstones
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply

TOKEN = "scripted-token"


class StaticTokens(TokenSource):
    def _fetch(self) -> Token:
        return Token(TOKEN, time.time() + 3600, "system/*.read")


def ndjson(resources: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def patients(n: int) -> bytes:
    return ndjson([{"resourceType": "Patient", "id": f"p{i}"} for i in range(n)])


def outcome(severity: str, code: str, text: str) -> dict:
    issue = {"severity": severity, "code": code, "diagnostics": text}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def server() -> Iterator[BulkServer]:
    with BulkServer() as s:
        s.token = TOKEN
        yield s


def bulk_client(server: BulkServer, clock: Clock | None = None, **options: object) -> BulkClient:
    clock = clock or Clock()
    client = FhirClient(server.url, auth=BearerAuth(StaticTokens(), server.url))
    return BulkClient(client, BulkOptions(**options), now=clock.now, sleep=clock.sleep)  # type: ignore[arg-type]


def test_poll_honours_retry_after_forms_caps_them_and_reports_progress(server: BulkServer) -> None:
    in_two_minutes = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    server.files["p.ndjson"] = patients(3)
    server.status = [
        Reply(202, headers={"X-Progress": "10%", "Retry-After": in_two_minutes}),
        Reply(202, headers={"X-Progress": "50%", "Retry-After": "7"}),
        Reply(202, headers={"Retry-After": "10800"}),  # Oracle Health: hours
        Reply(429, outcome("error", "throttled", "slow down"), {"Retry-After": "3"}),
        Reply(503, b"<html>gateway</html>", content_type="text/html"),
        Reply(200, server.manifest([("Patient", "p.ndjson", 3)])),
    ]
    clock = Clock()
    bulk = bulk_client(server, clock, max_wait_s=600, default_wait_s=5)
    seen: list[str | None] = []
    job = bulk.kick_off(ExportRequest())
    manifest = bulk.wait(job, lambda pending: seen.append(pending.progress))
    # 120 s after the header was built, measured against the server's Date (whole seconds):
    # less the real time the kick-off and first poll took, seconds on a loaded machine
    assert 100 <= clock.sleeps[0] <= 120
    assert clock.sleeps[1:] == [7, 600, 5, 5]  # Retry-After: 3 waits the 5 s floor
    assert seen == ["10%", "50%", None, None, None]
    assert [f.type for f in manifest.files] == ["Patient"]


def test_wait_gives_up_after_the_total_timeout_and_deletes_the_job(
    server: BulkServer, tmp_path: Path
) -> None:
    server.status = [Reply(202, headers={"Retry-After": "3600"})]
    bulk = bulk_client(server, max_wait_s=3600, total_timeout_s=4 * 3600)
    with pytest.raises(ExportError, match="not complete 14400s after kick-off"):
        run_export(bulk, ExportRequest(), tmp_path)
    assert server.paths("GET").count("/fhir/status") == 5  # at 0, 1, 2, 3 and 4 hours
    assert server.paths("DELETE") == ["/fhir/status"]


def test_manifest_paging_error_and_deleted_files(server: BulkServer, tmp_path: Path) -> None:
    server.files |= {
        "p.ndjson": patients(2),
        "o.ndjson": ndjson([{"resourceType": "Observation", "id": "o1"}]),
        "err.ndjson": ndjson(
            [
                outcome("warning", "processing", "Ignored _elements"),
                outcome("error", "not-found", "Patient/x"),
            ]
        ),
        "del.ndjson": ndjson(
            [
                {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [
                        {"request": {"method": "DELETE", "url": "Patient/gone1"}},
                        {"request": {"method": "DELETE", "url": "Observation/gone2"}},
                    ],
                }
            ]
        ),
    }
    page2 = server.manifest([("Observation", "o.ndjson", 1)])
    page2["error"] = [{"type": "OperationOutcome", "url": server.file_url("err.ndjson")}]
    page2["deleted"] = [{"type": "Bundle", "url": server.file_url("del.ndjson")}]
    server.pages["2"] = page2
    first = server.manifest([("Patient", "p.ndjson", 2)])
    first["link"] = [{"relation": "next", "url": f"{server.origin}/pages/2"}]
    server.status = [Reply(200, first)]
    result = run_export(
        bulk_client(server), ExportRequest(since="2026-01-01T00:00:00.000Z"), tmp_path
    )
    assert result.counts() == {"Patient": 2, "Observation": 1}
    assert result.fatal == ("error not-found: Patient/x (error/00002.OperationOutcome.ndjson:2)",)
    assert result.warnings == (
        "warning processing: Ignored _elements (error/00002.OperationOutcome.ndjson:1)",
    )
    (deleted,) = result.deleted_files()
    assert [(t.resource_type, t.id) for t in tombstones(deleted) if isinstance(t, Tombstone)] == [
        ("Patient", "gone1"),
        ("Observation", "gone2"),
    ]
    assert result.manifest.transaction_time == "2026-11-25T10:00:00.000Z"
    assert server.paths("DELETE") == ["/fhir/status"]


def test_redirect_to_another_origin_is_followed_without_the_token(
    server: BulkServer, tmp_path: Path
) -> None:
    with BulkServer() as storage:
        storage.files["p.ndjson"] = patients(4)
        server.redirects["p.ndjson"] = storage.file_url("p.ndjson") + "?signature=abc"
        server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 4)]))]
        result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    assert result.counts() == {"Patient": 4}
    (redirecting,) = [s for s in server.seen if s.path.startswith("/files/")]
    assert redirecting.headers["Authorization"] == f"Bearer {TOKEN}"
    (fetched,) = storage.seen
    assert "Authorization" not in fetched.headers


def test_no_token_is_sent_when_the_manifest_does_not_require_it(
    server: BulkServer, tmp_path: Path
) -> None:
    server.token = None
    server.files["p.ndjson"] = patients(1)
    server.status = [
        Reply(200, server.manifest([("Patient", "p.ndjson", 1)], requiresAccessToken=False))
    ]
    run_export(bulk_client(server), ExportRequest(), tmp_path)
    (fetched,) = [s for s in server.seen if s.path.startswith("/files/")]
    assert "Authorization" not in fetched.headers
    kickoff = next(s for s in server.seen if "$export" in s.path)
    assert kickoff.headers["Authorization"] == f"Bearer {TOKEN}"


def test_gzip_encoded_files_are_decoded(server: BulkServer, tmp_path: Path) -> None:
    server.gzip = True
    server.files["p.ndjson"] = patients(50)
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 50)]))]
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    (path,) = [p for _, p in result.output_files()]
    assert path.read_bytes() == patients(50)
    assert "gzip" in server.seen[-2].headers.get("Accept-Encoding", "")


@pytest.mark.parametrize("ranges", [True, False])
def test_a_cut_transfer_resumes_with_range_or_starts_over(
    server: BulkServer, tmp_path: Path, ranges: bool
) -> None:
    server.ranges = ranges
    server.files["p.ndjson"] = patients(1000)
    server.truncate["p.ndjson"] = 2
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 1000)]))]
    bulk = bulk_client(server, chunk_bytes=4096)  # resume granularity: one write
    result = run_export(bulk, ExportRequest(), tmp_path)
    (path,) = [p for _, p in result.output_files()]
    assert path.read_bytes() == patients(1000)
    gets = [s for s in server.seen if s.path.startswith("/files/")]
    assert len(gets) == 3
    assert ("Range" in gets[1].headers) and ("Range" in gets[2].headers)
    assert not list(tmp_path.rglob("*.part"))


def test_a_line_count_that_differs_from_the_manifest_is_an_error(
    server: BulkServer, tmp_path: Path
) -> None:
    server.files["p.ndjson"] = patients(3)
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 5)]))]
    with pytest.raises(ExportError, match="3 lines downloaded, the manifest says 5"):
        run_export(bulk_client(server), ExportRequest(), tmp_path)
    assert len([s for s in server.seen if s.path.startswith("/files/")]) == 2


def test_a_corrupt_line_is_kept_and_reported_with_file_and_line(
    server: BulkServer, tmp_path: Path
) -> None:
    body = patients(2) + b'{"resourceType": "Patient", "id": "broken\n' + patients(1)
    server.files["p.ndjson"] = body
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 4)]))]
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    assert result.counts() == {"Patient": 4}
    ((name, line, reason),) = result.bad_lines()
    assert (name, line) == ("output/00000.Patient.ndjson", 3)
    assert reason.startswith("not JSON")


def test_kickoff_refusal_carries_the_operation_outcome(server: BulkServer, tmp_path: Path) -> None:
    server.kickoff = [Reply(400, outcome("error", "invalid", "_type Foo is not supported"))]
    with pytest.raises(ExportError, match=r"HTTP 400.*_type Foo is not supported"):
        run_export(bulk_client(server), ExportRequest(types=("Foo",)), tmp_path)


def test_epic_group_exported_too_recently_is_a_clear_error_without_retries(
    server: BulkServer,
) -> None:
    text = "The client requested this Group too recently."
    server.kickoff = [Reply(429, outcome("error", "throttled", text), {"Retry-After": "1"})]
    with pytest.raises(ExportTooSoonError, match=r"requested too recently.*--cancel"):
        bulk_client(server).kick_off(ExportRequest("group", group_id="g1"))
    assert len(server.seen) == 1


def test_kickoff_retries_429_then_succeeds(server: BulkServer) -> None:
    server.kickoff = [
        Reply(429, outcome("error", "throttled", "busy"), {"Retry-After": "2"}),
        Reply(202, headers={"Content-Location": "status"}),
    ]
    clock = Clock()
    job = bulk_client(server, clock).kick_off(ExportRequest())
    assert job.status_url == server.url + "/status"
    assert clock.sleeps == [2]


def test_a_failed_export_is_deleted_and_reported(server: BulkServer, tmp_path: Path) -> None:
    server.status = [Reply(500, outcome("error", "exception", "database exploded"))]
    stale = tmp_path / "output" / "00000.Patient.ndjson.part"  # left by an earlier export
    stale.parent.mkdir()
    stale.write_bytes(b'{"resourceType":"Patient","id":"old"}\n')
    with pytest.raises(ExportError, match="database exploded"):
        run_export(bulk_client(server), ExportRequest(), tmp_path)
    assert server.paths("DELETE") == ["/fhir/status"]
    assert not stale.exists()


def test_kickoff_parameters_get_and_post_forms(server: BulkServer) -> None:
    bulk = bulk_client(server, lenient=True)
    bulk.kick_off(
        ExportRequest(
            "group",
            group_id="g1",
            types=("Patient", "Observation"),
            type_filters=("Observation?status=final",),
            elements=("id",),
        )
    )
    bulk.kick_off(ExportRequest("patient", patients=("Patient/p1",)))
    get, post = server.seen
    assert get.method == "GET" and get.path.startswith("/fhir/Group/g1/$export?")
    assert "_type=Patient%2CObservation" in get.path
    assert "_typeFilter=Observation%3Fstatus%3Dfinal" in get.path and "_elements=id" in get.path
    assert get.headers["Prefer"] == "respond-async, handling=lenient"
    assert post.method == "POST" and post.path == "/fhir/Patient/$export"
    body = orjson.loads(post.body)
    assert {"name": "patient", "valueReference": {"reference": "Patient/p1"}} in body["parameter"]


def test_manifest_round_trips_through_json(server: BulkServer) -> None:
    body = server.manifest([("Patient", "p.ndjson", 2), ("Observation", "o.ndjson", None)])
    manifest = Manifest.from_json(body)
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_a_run_that_died_mid_file_resumes_the_part_without_a_second_kickoff(
    server: BulkServer, tmp_path: Path
) -> None:
    server.files["p.ndjson"] = patients(2000)
    server.truncate["p.ndjson"] = 1
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 2000)]))]
    with pytest.raises(ExportError, match="failed 1 times"):
        run_export(bulk_client(server, attempts=0, chunk_bytes=4096), ExportRequest(), tmp_path)
    (part,) = tmp_path.rglob("*.part")
    kept = part.stat().st_size
    assert 0 < kept < len(patients(2000))
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    assert result.counts() == {"Patient": 2000}
    assert len([s for s in server.seen if "$export" in s.path]) == 1
    resumed = [s for s in server.seen if s.path.startswith("/files/")][-1]
    assert resumed.headers["Range"] == f"bytes={kept}-"
    (path,) = [p for _, p in result.output_files()]
    assert path.read_bytes() == patients(2000)


def test_a_file_served_as_gzip_data_is_unpacked(server: BulkServer, tmp_path: Path) -> None:
    server.files["p.ndjson.gz"] = gzip.compress(patients(30))
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson.gz", 30)]))]
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    (path,) = [p for _, p in result.output_files()]
    assert path.read_bytes() == patients(30)


def test_group_only_servers_refuse_other_levels_before_asking(server: BulkServer) -> None:
    bulk = bulk_client(server, group_only=True)
    with pytest.raises(ConfigurationError, match="only at group level"):
        bulk.kick_off(ExportRequest("system"))
    assert server.seen == []
    bulk.kick_off(ExportRequest("group", group_id="g1"))
    assert server.paths() == ["/fhir/Group/g1/$export?_outputFormat=application%2Ffhir%2Bndjson"]
