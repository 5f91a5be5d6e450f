"""A one-year backfill of every catalog type against the sandbox: time and requests at the server.

``before``: one ``_lastUpdated`` window per day and type (how ranges were searched until adaptive
windows); ``after``: the range as one window, split only where the server's count asks for it.
Requests are counted by a proxy in front of the sandbox. ``demo``: ``fhir-assets demo`` (what
``make demo`` runs: sandbox start, the month's partitions, views, write-back dry run) timed in the
same run, and the ratio ``after / demo`` printed (the target: at most 2), of the wall-clock times
and of the CPU times (this process's for the backfill; the demo's and its children's: less
moved by other work on a shared machine). The catalog is
``fhir_assets.catalog.CATALOG``, whatever its size (``--types core``: the 23 types it had before
US Core; the demo syncs the whole catalog either way). Run: ``.venv/bin/python bench/backfill.py
--mode after`` (``before`` takes minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
from dagster import DagsterInstance

from fhir_assets import partitions
from fhir_assets.assets import raw
from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.catalog import CATALOG, CORE, ResourceSpec, spec_for
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import demo_instance
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

# The counting proxy and the seeded data's day are test helpers (the repository root is not on
# sys.path when a bench script runs).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from backfill_floor import floor  # bench/ is sys.path[0] when this script runs

from fhir_assets_tests.deploy.postgres import Postgres
from fhir_assets_tests.proxy import FaultProxy
from fhir_assets_tests.sync.test_partitioned_assets import data_day

REPO = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def per_day_windows(partitioning, time_window, now):  # type: ignore[no-untyped-def]
    """The old plan: the range cut into one window per partition."""
    whole, _ = partitions.sync_windows(partitioning, time_window, now)
    return whole, partitioning.pieces(whole) if partitioning else [whole]


def year(sandbox: Sandbox) -> tuple[partitions.Partitioning, dict[str, str]]:
    """The daily partitioning of the year up to the seeded data's day, and a range run's tags."""
    day = data_day(sandbox)
    first = day - timedelta(days=365)
    tags = {
        "dagster/asset_partition_range_start": first.strftime("%Y-%m-%d"),
        "dagster/asset_partition_range_end": day.strftime("%Y-%m-%d"),
    }
    return partitions.Partitioning(start=first, lag=timedelta(0)), tags


def backfill(
    sandbox: Sandbox,
    mode: str,
    folder: Path,
    instance: str = "memory",
    catalog: tuple[ResourceSpec, ...] = CATALOG,
) -> tuple[float, float, int, int]:
    """Seconds, CPU seconds (this process's), requests and resources landed for a one-year daily
    backfill of every type, its run recorded as ``instance`` says (``recorded_instance``)."""
    partitioning, tags = year(sandbox)
    raw.sync_windows = per_day_windows if mode == "before" else partitions.sync_windows  # type: ignore[assignment]
    with FaultProxy(sandbox.base_url) as proxy:
        fhir = FhirServerResource(
            base_url=proxy.url,
            client_id=sandbox.client.client_id,
            private_key_path=str(sandbox.client.private_key_path),
            token_url=sandbox.token_url,
        )
        with recorded_instance(instance, folder / mode) as (recorded, server_cpu):
            started, cpu, server = time.monotonic(), time.process_time(), server_cpu()
            result = dg.materialize(
                build_raw_assets(catalog, partitioning),
                resources={
                    "fhir": fhir,
                    "landing": DuckDBWarehouseResource(database=str(folder / f"{mode}.duckdb")),
                },
                tags=tags,
                run_config=QUIET,
                instance=recorded,
            )
            seconds, cpu = time.monotonic() - started, time.process_time() - cpu
            if instance == "postgres":
                print(f"        (PostgreSQL's own processes: cpu {server_cpu() - server:.1f} s)")
        requests = len(proxy.requests)
    if not result.success:
        raise RuntimeError(f"the {mode} backfill failed")
    # each partition records its own rows; the run's total (run_resources) is on the newest's event
    landed = sum(
        next(
            int(m.metadata["run_resources"].value)
            for m in result.asset_materializations_for_node(f"fhir_raw__{spec.table}")
            if "run_resources" in m.metadata
        )
        for spec in catalog
    )
    return seconds, cpu, requests, landed


@contextlib.contextmanager
def recorded_instance(
    kind: str, folder: Path
) -> Iterator[tuple[DagsterInstance | None, Callable[[], float]]]:
    """Where the backfill's run is recorded, and a clock of the storage server's CPU seconds:
    ``memory`` (``dg.materialize``'s own instance), ``sqlite`` (files, as ``dg dev``'s and the
    demo's instance) or ``postgres`` (deploy/dagster.yaml against a PostgreSQL of its own on
    127.0.0.1, as a deployment; Debian's ``postgresql``)."""
    if kind == "memory":
        yield None, lambda: 0.0
        return
    if kind == "sqlite":
        instance = demo_instance(folder)
        try:
            yield instance, lambda: 0.0
        finally:
            instance.dispose()
        return
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    saved = os.environ.copy()
    with Postgres() as server:
        os.environ.update(server.environment(), DAGSTER_COMPUTE_LOG_DIR=str(folder / "logs"))
        instance = DagsterInstance.from_config(str(home))
        try:
            yield instance, lambda: postgres_cpu(server)
        finally:
            instance.dispose()
            os.environ.clear()
            os.environ.update(saved)


def postgres_cpu(server: Postgres) -> float:
    """CPU seconds of the PostgreSQL server so far: its postmaster's own and its reaped
    children's, plus its live backends' (``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def demo(folder: Path) -> tuple[float, float]:
    """Seconds and CPU seconds for ``fhir-assets demo`` (``make demo``'s command) into a DuckDB
    file of its own."""
    cli = Path(sys.executable).parent / "fhir-assets"
    started, cpu = time.monotonic(), children_cpu()
    subprocess.run(
        [str(cli), "demo", "--duckdb", str(folder / "demo.duckdb")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started, children_cpu() - cpu


def load() -> str:
    """The load average (1, 5, 15 min): the machine is shared, compare ratios within a run."""
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["before", "after", "both"], default="after")
    parser.add_argument("--no-demo", action="store_true", help="skip timing fhir-assets demo")
    parser.add_argument(
        "--instance",
        choices=["memory", "sqlite", "postgres"],
        default="memory",
        help="where the backfill's run is recorded: in memory, SQLite files as the demo's, or "
        "PostgreSQL with deploy/dagster.yaml as a deployment (needs Debian's postgresql)",
    )
    parser.add_argument(
        "--types",
        choices=["catalog", "core"],
        default="catalog",
        help="backfill every catalog type, or the 23 types before US Core (issue #27's count); "
        "the demo always syncs the whole catalog",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time Dagster's bookkeeping alone: the same range run of do-nothing assets with "
        "the raw assets' keys, partitions and checks, and without the checks",
    )
    args = parser.parse_args()
    catalog = CATALOG if args.types == "catalog" else tuple(spec_for(name) for name in CORE)
    modes = ["before", "after"] if args.mode == "both" else [args.mode]
    timed: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        with Sandbox() as sandbox:
            print(f"one-year daily backfill, {len(catalog)} types, sandbox {sandbox.base_url}")
            for mode in modes:
                seconds, used, requests, landed = backfill(
                    sandbox, mode, Path(folder), args.instance, catalog
                )
                timed[mode], cpu[mode] = seconds, used
                print(
                    f"{mode:7} {seconds:8.1f} s (cpu {used:.1f} s) {requests:7d} requests "
                    f"{landed:7d} resources, {load()}"
                )
            if args.floor:
                for name, checks in (("floor", True), ("floor-nc", False)):
                    timed[name], cpu[name] = floor(catalog, *year(sandbox), checks)
                    print(
                        f"{name:8} {timed[name]:7.1f} s (cpu {cpu[name]:.1f} s; do-nothing assets, "
                        f"{'with' if checks else 'without'} the 4 checks), {load()}"
                    )
        if not args.no_demo:
            timed["demo"], cpu["demo"] = demo(Path(folder))
            print(
                f"{'demo':7} {timed['demo']:8.1f} s (cpu {cpu['demo']:.1f} s; fhir-assets demo, "
                f"as make demo runs it), {load()}"
            )
        if "after" in timed and "demo" in timed:
            print(
                f"after / demo = {timed['after'] / timed['demo']:.2f} (target <= 2); "
                f"cpu {cpu['after'] / cpu['demo']:.2f}"
            )
        for name in ("floor", "floor-nc"):
            if name in cpu and "demo" in cpu:
                print(f"{name} / demo = cpu {cpu[name] / cpu['demo']:.2f}")


if __name__ == "__main__":
    main()
