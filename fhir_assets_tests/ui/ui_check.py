"""``make ui-check``: after ``fhir-assets demo``, open the Dagster UI (``fhir-assets ui``) in
headless Chromium (Debian's ``chromium``, driven by Playwright) and check that it shows what the
demo did: the raw assets materialized with every partition filled, the views materialized, no
asset of the default groups "Never materialized", each partition's metadata window its own
partition's; then a raw backfill launched as the UI launches it (its default settings) and the
views rebuilt after it by the default automation. Saves a screenshot of each page under
``.fhir-assets/ui-check/``; exit 1 if a check fails.

Not a pytest test: it needs the system Chromium and takes a minute or two.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhir_assets.processes import stop_group

HOME = Path(os.environ.get("FHIR_ASSETS_HOME", ".fhir-assets")).resolve()
OUT = HOME / "ui-check"
CLI = Path(sys.executable).parent / "fhir-assets"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Debian's chromium as a root service without a display: no sandbox, no GPU, no update pings
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCATION = "fhir_assets"  # [tool.dg.project] code_location_name (fhir-assets ui runs dg dev)
RAW = "fhir_raw/patient"
STARTUP_SECONDS = 240
# the groups a user sees first (fhir_bulk/export is opt-in: no partition until an export is
# requested)
DEFAULT_GROUPS = ("fhir_raw", "fhir_views", "fhir_writeback")
BACKFILL_SECONDS = 600
VIEWS_AFTER_BACKFILL_SECONDS = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.load(answer)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return dict(body["data"])


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename } } } } }"""


def wait_for_location(base: str, process: subprocess.Popen[bytes]) -> None:
    """Until the webserver answers and has loaded the code location (or the UI died)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fhir-assets ui exited with {process.returncode}")
        try:
            entries = graphql(base, LOCATIONS)["workspaceOrError"]["locationEntries"]
        except OSError:
            entries = []
        for entry in entries:
            if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                kind = entry["locationOrLoadError"]["__typename"]
                if kind != "RepositoryLocation":
                    raise RuntimeError(f"code location failed to load: {kind}")
                return
        time.sleep(2)
    raise TimeoutError(f"the Dagster UI did not load {LOCATION} in {STARTUP_SECONDS} s")


def start_ui(port: int, log: Path) -> subprocess.Popen[bytes]:
    """``fhir-assets ui`` in its own process group (stopped as a group by ``stop_ui``)."""
    argv = [str(CLI), "ui", "--port", str(port)]
    with log.open("wb") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def stop_ui(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group: ``fhir-assets ui`` then stops ``dagster dev`` and the sandbox."""
    stop_group(process, timeout=60)


class Browser:
    """One headless Chromium page on the UI; each ``show`` saves a full-page screenshot."""

    def __init__(self, page: Any, base: str) -> None:
        self.page, self.base = page, base

    def show(self, path: str, name: str, ready: str) -> str:
        """Open ``path``, wait until ``ready`` is on the page, screenshot it; the page's text."""
        page = self.page
        page.goto(self.base + path, wait_until="domcontentloaded")
        page.get_by_text(ready).first.wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(3000)
        skip = page.get_by_role("button", name="Skip")
        if skip.count():  # the first visit's "Join the Dagster community" dialog
            skip.first.click()
        page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
        return str(page.inner_text("body"))


def check(results: list[tuple[str, bool]], name: str, ok: bool) -> None:
    results.append((name, ok))
    print(f"[{'ok' if ok else 'FAILED'}] {name}", flush=True)


def browse(base: str, checks: Callable[[Browser, list[tuple[str, bool]]], None]) -> bool:
    from playwright.sync_api import sync_playwright

    results: list[tuple[str, bool]] = []
    profile = OUT / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),  # a fresh profile each run (removed before)
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 3600},
        )
        try:
            checks(Browser(context.new_page(), base), results)
        finally:
            context.close()
    return bool(results) and all(ok for _, ok in results)


def warehouse_tables() -> dict[str, set[str]]:
    """The raw and view tables the demo left in its DuckDB file: what the UI must show."""
    import duckdb

    query = "SELECT table_schema, table_name FROM information_schema.tables"
    with duckdb.connect(str(HOME / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(query).fetchall()
    # leading underscore: bookkeeping (``_quarantine``), not an asset
    wanted = ("fhir_raw", "fhir")
    return {schema: {n for s, n in rows if s == schema and n[0] != "_"} for schema in wanted}


def rows(text: str, prefix: str) -> dict[str, str]:
    """A catalog list's text cut into rows: asset name -> the row's text (name to next name)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"{prefix} / ")]
    starts = [i for i in starts if i == 0 or lines[i - 1] != lines[i]]  # name printed twice
    ends = [*starts[1:], len(lines)]
    return {lines[i].split(" / ", 1)[1]: "\n".join(lines[i:j]) for i, j in zip(starts, ends)}


def ui_checks(tables: dict[str, set[str]]) -> Callable[[Browser, list[tuple[str, bool]]], None]:
    def run(browser: Browser, results: list[tuple[str, bool]]) -> None:
        group = f"/locations/{LOCATION}/asset-groups"
        text = browser.show(f"{group}/fhir_raw/list", "raw-assets", "fhir_raw / patient")
        raw = rows(text, "fhir_raw")
        check(
            results, f"{len(tables['fhir_raw'])} raw assets listed", set(raw) >= tables["fhir_raw"]
        )
        # status column: materialized "All", missing 0, failed 0, in progress 0
        filled = [name for name, row in raw.items() if "\nAll\n0\n0\n0\n" in row]
        check(results, "every raw asset has all its partitions materialized", filled == list(raw))
        text = browser.show(f"/assets/{RAW}?view=partitions", "raw-patient-partitions", "Missing (")
        check(results, "fhir_raw/patient: no partition missing", "Missing (0)" in text)
        check(results, "fhir_raw/patient: no partition failed", "Failed (0)" in text)
        check(
            results,
            "fhir_raw/patient: partitions materialized",
            re.search(r"Materialized \([1-9]\d*\)", text) is not None,
        )
        text = browser.show(f"/assets/{RAW}", "raw-patient", "Latest materialization")
        check(
            results,
            "fhir_raw/patient: latest materialization shown",
            "Never materialized" not in text and "Row count" in text,
        )
        text = browser.show(f"{group}/fhir_views/list", "views", "fhir / patient")
        views = rows(text, "fhir")
        check(results, f"{len(tables['fhir'])} views listed", set(views) >= tables["fhir"])
        done = [name for name, row in views.items() if "\nMaterialized\n" in row]
        check(results, "every view materialized", bool(done) and done == list(views))
        text = browser.show("/assets/fhir/patient", "view-patient", "Latest materialization")
        check(
            results,
            "fhir/patient view: latest materialization shown",
            "Never materialized" not in text,
        )
        from .ui_backfill import after_the_demo

        after_the_demo(browser, results)

    return run


def main() -> int:
    import shutil

    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    if "--no-demo" not in sys.argv:
        # make demo's own flow, on its sandbox port: rows are keyed by the server's URL, so a
        # demo on another port would land a second copy into the same warehouse
        demo = subprocess.run([str(CLI), "demo"], check=False)
        if demo.returncode:
            print("fhir-assets demo failed: nothing to check in the UI", file=sys.stderr)
            return 1
    tables = warehouse_tables()
    port = free_port()
    process = start_ui(port, OUT / "ui.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_location(base, process)
        ok = browse(base, ui_checks(tables))
    finally:
        stop_ui(process)
    print(f"ui-check {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    print(f"screenshots: {OUT}/*.png")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
