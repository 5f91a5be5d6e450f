"""The ``make ui-check`` checks beyond the demo's own pages: no asset of the default groups left
"Never materialized", each partition's metadata window its own partition's, and the views rebuilt
by the default automation after a raw backfill launched as the UI launches it.

The backfill goes through the GraphQL mutation the UI's "Materialize all" dialog sends, with its
defaults (every partition, every raw asset, no extra tags); the views' refresh is whatever the
code location runs by default (the automation condition sensor): nothing here starts it.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .ui_check import (
    BACKFILL_SECONDS,
    DEFAULT_GROUPS,
    LOCATION,
    VIEWS_AFTER_BACKFILL_SECONDS,
    Browser,
    check,
    graphql,
)

NODES = """{ assetNodes { assetKey { path } groupName isPartitioned partitionKeys
  dependencyKeys { path } assetMaterializations(limit: 1) { timestamp } } }"""
MATERIALIZATIONS = """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset {
  assetMaterializations(limit: 2000) { partition timestamp metadataEntries { label
    ... on TextMetadataEntry { text } ... on BoolMetadataEntry { boolValue } } } } } }"""
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status endTimestamp } } }"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def nodes(base: str) -> list[dict[str, Any]]:
    return list(graphql(base, NODES)["assetNodes"])


def default_groups_materialized(browser: Browser, results: list[tuple[str, bool]]) -> None:
    never = [
        "/".join(n["assetKey"]["path"])
        for n in nodes(browser.base)
        if n["groupName"] in DEFAULT_GROUPS and not n["assetMaterializations"]
    ]
    check(results, f"no asset of {', '.join(DEFAULT_GROUPS)} never materialized {never}", not never)
    for group in DEFAULT_GROUPS:
        path = f"/locations/{LOCATION}/asset-groups/{group}/list"
        text = browser.show(path, f"group-{group}", f"{group.split('_')[0]}")
        check(
            results,
            f"group {group}: no 'Never materialized' shown",
            "Never materialized" not in text,
        )


def expected_window(key: str, first: str, partial: bool) -> tuple[str, str | None]:
    """The window a daily partition ``key`` should show: its own day (the first partition also
    holds the history before it; a partial one ends before the day does)."""
    day = date.fromisoformat(key)
    start = "1970-01-01T00:00:00.000Z" if key == first else f"{day.isoformat()}T00:00:00.000Z"
    end = None if partial else f"{(day + timedelta(days=1)).isoformat()}T00:00:00.000Z"
    return start, end


def latest_by_partition(base: str, path: list[str]) -> dict[str, dict[str, Any]]:
    found = graphql(base, MATERIALIZATIONS, {"k": {"path": path}})["assetOrError"]
    latest: dict[str, dict[str, Any]] = {}
    for event in sorted(found["assetMaterializations"], key=lambda e: float(e["timestamp"])):
        entries = {m["label"]: m.get("text", m.get("boolValue")) for m in event["metadataEntries"]}
        latest[event["partition"]] = entries
    return latest


def partition_windows_are_their_own(browser: Browser, results: list[tuple[str, bool]]) -> None:
    for path in (["fhir_raw", "patient"], ["fhir_raw", "observation"]):
        latest = latest_by_partition(browser.base, path)
        first = min(latest)
        wrong = []
        for key, entries in latest.items():
            start, end = expected_window(key, first, bool(entries.get("partial")))
            window = str(entries.get("window", ""))
            if not window.startswith(f"[{start}, ") or (end and not window.endswith(f"{end})")):
                wrong.append(f"{key}: {window}")
        name = "/".join(path)
        check(results, f"{name}: {len(latest)} partitions, each its own window {wrong[:3]}",
              bool(latest) and not wrong)  # fmt: skip
    key = sorted(latest)[-2] if len(latest) > 1 else min(latest)
    try:
        text = browser.show(f"/assets/fhir_raw/observation?view=partitions&partition={key}",
                            "raw-observation-partition", "window")  # fmt: skip
    except Exception as exc:  # a page that never shows its metadata is a failed check
        text = f"{type(exc).__name__}: {exc}"
    start, _ = expected_window(key, first, False)
    check(results, f"fhir_raw/observation {key}: the UI shows its own window", start in text)


def views_rebuilt_after_a_ui_backfill(browser: Browser, results: list[tuple[str, bool]]) -> None:
    every = nodes(browser.base)
    raw = [n for n in every if n["groupName"] == "fhir_raw"]
    views = [n for n in every if n["groupName"] == "fhir_views"]
    params = {
        "assetSelection": [{"path": n["assetKey"]["path"]} for n in raw],
        "partitionNames": raw[0]["partitionKeys"],
        "fromFailure": False,
        "tags": [],
    }
    started = datetime.now(UTC).timestamp()
    launched = graphql(browser.base, LAUNCH, {"p": params})["launchPartitionBackfill"]
    check(
        results,
        f"raw backfill launched as the UI launches it: {launched}",
        "backfillId" in launched,
    )
    if "backfillId" not in launched:
        return
    status, _ = wait_backfill(browser.base, launched["backfillId"])
    check(
        results, f"raw backfill {launched['backfillId']}: {status}", status == "COMPLETED_SUCCESS"
    )
    stale = [n["assetKey"]["path"] for n in views]
    deadline = time.monotonic() + VIEWS_AFTER_BACKFILL_SECONDS
    while stale and time.monotonic() < deadline:
        time.sleep(10)
        fresh = {tuple(n["assetKey"]["path"]): n for n in nodes(browser.base)}
        stale = [p for p in stale if not rebuilt_after_its_raw(fresh, fresh[tuple(p)], started)]
    browser.show(f"/locations/{LOCATION}/asset-groups/fhir_views/list", "views-after-backfill",
                 "fhir / patient")  # fmt: skip
    name = f"views rebuilt by default within {VIEWS_AFTER_BACKFILL_SECONDS} s of the backfill"
    check(results, f"{name} (the automation condition sensor, on by default); stale: {stale}",
          not stale)  # fmt: skip


def latest(node: dict[str, Any]) -> float:
    """The node's latest materialization time (any partition), in seconds; 0 if none."""
    events = node["assetMaterializations"]
    return float(events[0]["timestamp"]) / 1000 if events else 0.0


def rebuilt_after_its_raw(
    nodes_by_path: dict[tuple[str, ...], dict[str, Any]], view: dict[str, Any], started: float
) -> bool:
    """Whether the view was materialized after the backfill's last write of its raw table.

    Each view is rebuilt as soon as its own raw table is done (the sensor waits only for that
    dependency, not for the whole backfill), so a view may well be rebuilt before the backfill
    as a whole is marked finished: compared with the backfill's end, it would look stale.
    """
    raw = [nodes_by_path[tuple(dep["path"])] for dep in view["dependencyKeys"]]
    written = max((latest(node) for node in raw), default=0.0)
    return written > started and latest(view) > written


def wait_backfill(base: str, backfill_id: str) -> tuple[str, float]:
    deadline = time.monotonic() + BACKFILL_SECONDS
    status, ended = "REQUESTED", 0.0
    while time.monotonic() < deadline:
        found = graphql(base, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        status, ended = str(found.get("status")), float(found.get("endTimestamp") or 0)
        if status in DONE:
            return status, ended or datetime.now(UTC).timestamp()
        time.sleep(5)
    return f"{status} after {BACKFILL_SECONDS} s", datetime.now(UTC).timestamp()


def after_the_demo(browser: Browser, results: list[tuple[str, bool]]) -> None:
    """Every check of this module, in order (the backfill last: it changes what the others see)."""
    default_groups_materialized(browser, results)
    partition_windows_are_their_own(browser, results)
    views_rebuilt_after_a_ui_backfill(browser, results)
