"""Windowed search: ge/lt boundaries, repeated next links, 410 restarts, splitting, dedup."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fhir_assets.fhir import ConfigurationError, FhirClient, PagingError
from fhir_assets.fhir.profiles import GENERIC, SEKMET
from fhir_assets.fhir.search import SyncStats, WindowSync, keep_latest, search_window
from fhir_assets.fhir.window import EPOCH, Query, Window, format_instant
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.sync.fakefhir import Script, fake_fhir

FAST = replace(GENERIC, page_size=10, max_restarts=2)


def fetch(base_url: str, query: Query, profile=FAST) -> tuple[list[str], SyncStats]:
    stats = SyncStats()
    with FhirClient(base_url) as client:
        ids = [r["id"] for page in search_window(client, query, profile, stats) for r in page]
    return ids, stats


def test_format_instant_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 3, 1, 11, 30, 5, 123456, tzinfo=UTC) + timedelta(0)
    assert format_instant(moment) == "2026-03-01T11:30:05.123Z"
    local = moment.astimezone(datetime.now().astimezone().tzinfo)
    assert format_instant(local) == "2026-03-01T11:30:05.123Z"


def test_window_params_use_ge_and_lt() -> None:
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert window.params() == [
        ("_lastUpdated", "ge2026-01-01T00:00:00.000Z"),
        ("_lastUpdated", "lt2026-01-02T00:00:00.000Z"),
    ]
    first, second = window.halves()
    assert (first.start, first.end, second.end) == (window.start, second.start, window.end)
    assert [w.span for w in window.pieces(timedelta(hours=10))] == [
        timedelta(hours=10),
        timedelta(hours=10),
        timedelta(hours=4),
    ]


def test_search_stops_on_a_repeated_next_link() -> None:
    script = Script(repeat_next=True)
    with fake_fhir(script) as base, pytest.raises(PagingError, match="repeated a next link"):
        fetch(base, Query("Patient"))
    assert len(script.queries) == 2  # page 2 links to itself: stop before fetching it again


def test_search_restarts_the_window_after_410_gone() -> None:
    script = Script(gone_pages=1)
    with fake_fhir(script) as base:
        ids, stats = fetch(base, Query("Patient"))
    assert sorted(set(ids)) == [f"p{i:03d}" for i in range(25)]
    assert stats["restarts"] == 1
    assert len(ids) == 35  # page 1 came twice; consumers keep the latest per id


def test_search_gives_up_after_repeated_410() -> None:
    script = Script(gone_pages=100)
    with fake_fhir(script) as base, pytest.raises(PagingError, match="gave up after 2 restarts"):
        fetch(base, Query("Patient"))
    assert script.gone_pages == 97  # one first try and two restarts


def test_search_accepts_a_server_that_refuses_summary_count() -> None:
    script = Script(refuse_count=True)
    window = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    with fake_fhir(script) as base:
        ids, stats = fetch(base, Query("Patient", window=window))
    assert len(ids) == 25 and stats["repages"] == 0
    assert "_summary" in script.queries[-1]


def test_search_window_includes_start_and_excludes_end(sandbox: Sandbox) -> None:
    with sandbox.fhir_client() as client:
        everything = list(client.search("Encounter", {"_count": 500}))
        instants = sorted({r["meta"]["lastUpdated"] for r in everything})
        start, end = (datetime.fromisoformat(i.replace("Z", "+00:00")) for i in instants[2:4])
        ids = [
            r["id"]
            for page in search_window(
                client, Query("Encounter", window=Window(start, end)), SEKMET, SyncStats()
            )
            for r in page
        ]
    expected = {r["id"] for r in everything if r["meta"]["lastUpdated"] == instants[2]}
    assert set(ids) == expected and expected


def test_search_splits_big_windows_and_loses_nothing(sandbox: Sandbox) -> None:
    profile = replace(SEKMET, page_size=40, split_threshold=150, min_window=timedelta(0))
    with sandbox.fhir_client() as client:
        direct = {r["id"]: r for r in client.search("Observation", {"_count": 500})}
        sync = WindowSync(client, profile, workers=2)
        window = Window(EPOCH, datetime.now(UTC) + timedelta(seconds=1))
        synced = keep_latest(
            r for page in sync.pages([Query("Observation", window=window)]) for r in page
        )
    assert synced == direct
    assert sync.stats["splits"] > 0
    assert sync.stats["fetched"] == len(direct)  # split windows discard their probe page


def test_keep_latest_prefers_newer_versions() -> None:
    old = {"id": "a", "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00.000Z"}}
    new = {"id": "a", "meta": {"versionId": "2", "lastUpdated": "2026-01-02T00:00:00.000Z"}}
    assert keep_latest([new, old]) == {"a": new}
    assert keep_latest([old, new]) == {"a": new}


def test_a_window_too_small_to_split_is_paged_whole() -> None:
    profile = replace(FAST, split_threshold=5, min_window=timedelta(0))
    window = Window(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, 0, 1000, tzinfo=UTC)
    )
    with fake_fhir(Script()) as base:
        ids, stats = fetch(base, Query("Patient", window=window), profile)
    assert len(ids) == 25 and stats["splits"] == 0
    with pytest.raises(ConfigurationError, match="step must be positive"):
        window.pieces(timedelta(0))
