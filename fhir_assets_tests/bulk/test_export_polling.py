"""Export polling that cannot lock a client out, against the scripted Bulk Data server: a floor
under ``Retry-After``, back-off while a job is unchanged, and one request budget per server
shared by every export (and sync) on the machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fhir_assets.fhir import FhirClient
from fhir_assets.fhir.bulk import BulkClient, BulkOptions, ExportRequest
from fhir_assets.fhir.ratelimit import RateLimit
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply
from fhir_assets_tests.bulk.test_export_scripted import Clock, bulk_client, patients


@pytest.fixture
def server() -> Iterator[BulkServer]:
    with BulkServer() as s:
        yield s


def test_polls_wait_at_least_the_floor_and_back_off_while_nothing_changes(
    server: BulkServer,
) -> None:
    server.files["p.ndjson"] = patients(1)
    # The SMART reference server: Retry-After: 1 on every poll.
    unchanged = Reply(202, headers={"X-Progress": "in progress", "Retry-After": "1"})
    moved = Reply(202, headers={"X-Progress": "50%", "Retry-After": "1"})
    done = Reply(200, server.manifest([("Patient", "p.ndjson", 1)]))
    server.status = [unchanged, unchanged, unchanged, unchanged, moved, done]
    clock = Clock()
    bulk = bulk_client(server, clock, min_poll_s=4, poll_backoff=2, max_wait_s=20)
    bulk.wait(bulk.kick_off(ExportRequest()))
    assert clock.sleeps == [4, 8, 16, 20, 4]
    assert server.paths("GET").count("/fhir/status") == 6


def test_exports_of_one_server_share_one_request_budget(server: BulkServer, tmp_path: Path) -> None:
    server.status = [Reply(202, headers={"Retry-After": "1"})]
    # Two exports in two clients (as two processes would be): each polls 4 times at 4/s.
    options = BulkOptions(requests_per_s=4, min_poll_s=0, max_wait_s=0)
    clients = [BulkClient(FhirClient(server.url), options, sleep=lambda _: None) for _ in range(2)]
    jobs = [c.kick_off(ExportRequest()) for c in clients]
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda cj: [cj[0].poll(cj[1]) for _ in range(4)], zip(clients, jobs)))
    # 2 kick-offs and 8 polls under one budget of 4 per second: the last two wait for the
    # third second; with a budget each (5 requests each) they would be done after one.
    assert time.monotonic() - started >= 1.5
    assert clients[0].rate_limit is not clients[1].rate_limit


def test_an_export_uses_the_clients_own_rate_limit_when_it_has_one(server: BulkServer) -> None:
    limit = RateLimit(100)
    bulk = BulkClient(FhirClient(server.url, rate_limit=limit))
    bulk.kick_off(ExportRequest())
    assert bulk.rate_limit is limit
