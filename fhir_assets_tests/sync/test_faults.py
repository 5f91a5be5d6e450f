"""A multi-page sync through 20% failing responses lands exactly what the server holds."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fhir_assets.fhir import RetryPolicy
from fhir_assets.fhir.profiles import SEKMET, apply_profile, build_queries
from fhir_assets.fhir.search import WindowSync, keep_latest
from fhir_assets.fhir.window import EPOCH, Window
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.proxy import Fault, FaultProxy
from fhir_assets_tests.sync.conftest import ClientFactory

TYPES = ["Patient", "Encounter", "Observation", "Condition"]


def digest(resources: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A content hash per id (canonical JSON)."""
    return {
        rid: hashlib.sha256(orjson.dumps(r, option=orjson.OPT_SORT_KEYS)).hexdigest()
        for rid, r in resources.items()
    }


def test_sync_through_20_percent_failures_is_exact(
    sandbox: Sandbox, proxy: FaultProxy, proxied_client: ClientFactory
) -> None:
    # 1 - 0.93 * 0.925 * 0.92 ~ 21% of responses fail, in a seeded (reproducible) mix.
    proxy.add(Fault("status", status=429, retry_after=1, rate=0.07))
    proxy.add(Fault("status", status=503, rate=0.075))
    proxy.add(Fault("drop", rate=0.08))
    client = proxied_client(retry=RetryPolicy(attempts=8, sleep=lambda _: None))
    profile = replace(SEKMET, page_size=50, split_threshold=600, min_window=timedelta(0))
    apply_profile(client, profile)
    window = Window(EPOCH, datetime.now(UTC) + timedelta(seconds=1))
    sync = WindowSync(client, profile, workers=2)
    landed: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TYPES}
    queries = [q for t in TYPES for q in build_queries(profile, t, window)]
    for page in sync.pages(queries):
        for resource in page:
            keep_latest([resource], landed[resource["resourceType"]])

    with sandbox.fhir_client() as direct:
        held = {t: {r["id"]: r for r in direct.search(t, {"_count": 500})} for t in TYPES}
    assert {t: len(v) for t, v in landed.items()} == {t: len(v) for t, v in held.items()}
    assert {t: digest(v) for t, v in landed.items()} == {t: digest(v) for t, v in held.items()}

    statuses = proxy.statuses()
    failed = len(proxy.requests) - statuses[200]
    assert 0.1 < failed / len(proxy.requests) < 0.35  # ~21% expected; requests interleave
    assert set(statuses) == {200, 429, 503, None}
    assert client.stats.retries == failed
    assert sync.metadata()["pages"] > 40
