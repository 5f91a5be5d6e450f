"""A one-year backfill of every catalog type against the sandbox: time and requests at the server.

``before``: one ``_lastUpdated`` window per day and type (how ranges were searched until adaptive
windows); ``after``: the range as one window, split only where the server's count asks for it.
Requests are counted by a proxy in front of the sandbox. ``demo``: ``fhir-assets demo`` (what
``make demo`` runs: sandbox start, the month's partitions, views, write-back dry run) timed in the
same run, and the ratio ``after / demo`` printed (the target: at most 2). The catalog is
``fhir_assets.catalog.CATALOG``, whatever its size. Run: ``.venv/bin/python bench/backfill.py
--mode after`` (``before`` takes minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
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
    # each partition records its own rows; the run's total (run_resources) is on the newest's event
    landed = sum(
        int(m.metadata["run_resources"].value)
        for spec in CATALOG
        for m in result.asset_materializations_for_node(f"fhir_raw__{spec.table}")
        if "run_resources" in m.metadata
    )
    return seconds, requests, landed


def demo(folder: Path) -> float:
    """Seconds for ``fhir-assets demo`` (``make demo``'s command) into a DuckDB file of its own."""
    cli = Path(sys.executable).parent / "fhir-assets"
    started = time.monotonic()
    subprocess.run(
        [str(cli), "demo", "--duckdb", str(folder / "demo.duckdb")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def load() -> str:
    """The load average (1, 5, 15 min): the machine is shared, compare ratios within a run."""
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["before", "after", "both"], default="after")
    parser.add_argument("--no-demo", action="store_true", help="skip timing fhir-assets demo")
    args = parser.parse_args()
    modes = ["before", "after"] if args.mode == "both" else [args.mode]
    timed: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        with Sandbox() as sandbox:
            print(f"one-year daily backfill, {len(CATALOG)} types, sandbox {sandbox.base_url}")
            for mode in modes:
                seconds, requests, landed = backfill(sandbox, mode, Path(folder))
                timed[mode] = seconds
                print(
                    f"{mode:7} {seconds:8.1f} s {requests:7d} requests {landed:7d} resources, "
                    + load()
                )
        if not args.no_demo:
            timed["demo"] = demo(Path(folder))
            print(
                f"{'demo':7} {timed['demo']:8.1f} s (fhir-assets demo, as make demo runs it), "
                + load()
            )
        if "after" in timed and "demo" in timed:
            print(f"after / demo = {timed['after'] / timed['demo']:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
