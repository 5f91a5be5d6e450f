"""Writes while a window is paged: nothing is skipped, and the next window picks up the writes.

sekmet pages by offset, so an update that moves a resource out of the window mid-pull shifts the
remaining rows left and a naive pager skips some. The sync notices the window's total changed and
pages it again; the updated and created resources land with the next window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fhir_assets.fhir import FhirClient
from fhir_assets.fhir.profiles import SEKMET
from fhir_assets.fhir.search import SyncStats, keep_latest, search_window
from fhir_assets.fhir.window import EPOCH, Query, Window
from fhir_assets.sandbox import Sandbox

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def write_during_sync(client: FhirClient, page: list[dict[str, Any]]) -> None:
    """Update every resource of an already-read page and create a few new ones."""
    for resource in page:
        changed = {**resource, "status": "amended"}
        client.request(
            "PUT", f"Observation/{resource['id']}", data=orjson.dumps(changed), headers=FHIR_JSON
        )
    for index in range(5):
        new = {"resourceType": "Observation", "status": "final", "code": {"text": f"new {index}"}}
        client.request("POST", "Observation", data=orjson.dumps(new), headers=FHIR_JSON)


def test_writes_during_paging_are_all_present_after_the_next_window(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    profile = replace(SEKMET, page_size=40)
    landed: dict[str, dict[str, Any]] = {}
    stats = SyncStats()
    with sandbox.fhir_client() as client:
        first_end = datetime.now(UTC)
        time.sleep(0.01)  # writes below get a lastUpdated after the first window
        pages = search_window(
            client, Query("Observation", window=Window(EPOCH, first_end)), profile, stats
        )
        for number, page in enumerate(pages):
            keep_latest(page, landed)
            if number == 0:
                write_during_sync(client, page)
        assert stats["repages"] >= 1  # the total moved: the window was paged again
        second = Window(first_end, datetime.now(UTC) + timedelta(seconds=1))
        for page in search_window(client, Query("Observation", window=second), profile, stats):
            keep_latest(page, landed)
        held = {r["id"]: r for r in client.search("Observation", {"_count": 500})}
    assert landed.keys() == held.keys()
    assert landed == held
    assert sum(r["status"] == "amended" for r in landed.values()) == 40
