"""Paged-search throughput against the sandbox with 1 and N workers (resources/s).

Every catalog type is searched over its whole history; each type is one task for the worker
pool. Run with ``make bench`` or ``.venv/bin/python bench/rest.py [--workers 4] [--page-size 100]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fhir_assets.catalog import CATALOG
from fhir_assets.fhir.profiles import apply_profile, build_queries, resolve_profile
from fhir_assets.fhir.search import WindowSync
from fhir_assets.fhir.window import EPOCH, Window
from fhir_assets.sandbox import Sandbox

HOME = Path(__file__).resolve().parent.parent / ".fhir-assets"


def run(sandbox: Sandbox, workers: int, page_size: int) -> dict[str, float]:
    with sandbox.fhir_client() as client:
        profile = replace(resolve_profile(client), page_size=page_size)
        apply_profile(client, profile, requests_per_s=10_000)  # measure the server, not a limit
        window = Window(EPOCH, datetime.now(UTC) + timedelta(seconds=1))
        queries = [
            q for spec in CATALOG for q in build_queries(profile, spec.resource_type, window)
        ]
        sync = WindowSync(client, profile, workers=workers)
        started = time.perf_counter()
        resources = sum(len(page) for page in sync.pages(queries))
        seconds = time.perf_counter() - started
    return {"resources": resources, "pages": sync.stats["pages"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    with Sandbox(home=HOME) as sandbox:
        run(sandbox, 1, args.page_size)  # warm-up: token, SQLite page cache
        print(f"paged search, {len(CATALOG)} types, _count={args.page_size}")
        for workers in sorted({1, args.workers}):
            result = run(sandbox, workers, args.page_size)
            rate = result["resources"] / result["seconds"]
            print(
                f"  workers={workers}: {result['resources']:.0f} resources, "
                f"{result['pages']:.0f} pages in {result['seconds']:.2f} s "
                f"= {rate:,.0f} resources/s"
            )


if __name__ == "__main__":
    main()
