"""A one-year backfill of every catalog type against the sandbox: time and requests at the server.

``before``: one ``_lastUpdated`` window per day and type (how ranges were searched until adaptive
windows); ``after``: the range as one window, split only where the server's count asks for it.
Requests are counted by a proxy in front of the sandbox. Run: ``.venv/bin/python bench/backfill.py``
(``--mode after`` alone takes seconds; ``before`` takes minutes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg

from fhir_assets import partitions
from fhir_assets.assets import raw
from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.catalog import CATALOG
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

# The counting proxy and the seeded data's day are test helpers (the repository root is not on
# sys.path when a bench script runs).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fhir_assets_tests.proxy import FaultProxy
from fhir_assets_tests.sync.test_partitioned_assets import data_day

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def per_day_windows(partitioning, time_window, now):  # type: ignore[no-untyped-def]
    """The old plan: the range cut into one window per partition."""
    whole, _ = partitions.sync_windows(partitioning, time_window, now)
    return whole, partitioning.pieces(whole) if partitioning else [whole]


def backfill(sandbox: Sandbox, mode: str, folder: Path) -> tuple[float, int, int]:
    """Seconds, requests and resources landed for a one-year daily backfill of every type."""
    day = data_day(sandbox)
    first = day - timedelta(days=365)
    partitioning = partitions.Partitioning(start=first, lag=timedelta(0))
    raw.sync_windows = per_day_windows if mode == "before" else partitions.sync_windows  # type: ignore[assignment]
    with FaultProxy(sandbox.base_url) as proxy:
        fhir = FhirServerResource(
            base_url=proxy.url,
            client_id=sandbox.client.client_id,
            private_key_path=str(sandbox.client.private_key_path),
            token_url=sandbox.token_url,
        )
        started = time.monotonic()
        result = dg.materialize(
            build_raw_assets(CATALOG, partitioning),
            resources={
                "fhir": fhir,
                "landing": DuckDBWarehouseResource(database=str(folder / f"{mode}.duckdb")),
            },
            tags={
                "dagster/asset_partition_range_start": first.strftime("%Y-%m-%d"),
                "dagster/asset_partition_range_end": day.strftime("%Y-%m-%d"),
            },
            run_config=QUIET,
        )
        seconds = time.monotonic() - started
        requests = len(proxy.requests)
    if not result.success:
        raise RuntimeError(f"the {mode} backfill failed")
    landed = sum(
        int(m.metadata["resources"].value)
        for spec in CATALOG
        for m in result.asset_materializations_for_node(f"fhir_raw__{spec.table}")[:1]
    )
    return seconds, requests, landed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["before", "after", "both"], default="both")
    args = parser.parse_args()
    modes = ["before", "after"] if args.mode == "both" else [args.mode]
    with Sandbox() as sandbox, tempfile.TemporaryDirectory() as folder:
        print(f"one-year daily backfill, {len(CATALOG)} types, sandbox {sandbox.base_url}")
        for mode in modes:
            seconds, requests, landed = backfill(sandbox, mode, Path(folder))
            print(f"{mode:7} {seconds:8.1f} s {requests:7d} requests {landed:7d} resources")


if __name__ == "__main__":
    main()
