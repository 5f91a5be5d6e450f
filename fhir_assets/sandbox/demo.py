"""The demo: sandbox -> a backfill of every raw asset's partitions -> the warehouse (DuckDB, or
Snowflake / its emulator) -> the default views and a dry run of the write-back example, then the
row counts side by side. Built on
``build_defs(settings)``: no environment is patched."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import CATALOG, ResourceSpec
from ..fhir.client import redact
from ..settings import Settings
from ..warehouse import sql
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.settings import WarehouseSettings, open_warehouse
from .server import Sandbox

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

DAGSTER_YAML = "telemetry:\n  enabled: false\n"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True, slots=True)
class TableCount:
    resource_type: str
    table: str
    server: int
    warehouse: int


def dagster_home(home: Path) -> Path:
    """A persistent DAGSTER_HOME under ``home`` (telemetry off), shared by the demo and the UI."""
    path = home.resolve() / "dagster"
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return path


def demo_instance(home: Path) -> DagsterInstance:
    """The persistent Dagster instance under ``home``, so demo runs show up in ``make ui``."""
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(dagster_home(home)))


def sandbox_settings(sandbox: Sandbox, warehouse: WarehouseSettings, **environ: str) -> Settings:
    """Settings pointing at the sandbox and ``warehouse`` (``environ``: more ``FHIR_*``)."""
    settings = Settings.from_environ(sandbox.environment() | environ)
    return dataclasses.replace(settings, warehouse=warehouse)


def warehouse_counts(
    warehouse: WarehouseSettings, catalog: tuple[ResourceSpec, ...], server: str | None = None
) -> dict[str, int]:
    """Current rows (tombstones excluded) per raw table in the warehouse (0 if missing).

    Rows are kept per source server; with ``server``, only that server's rows count (each
    sandbox start has a new port, hence a new server URL).
    """
    counts = {}
    with open_warehouse(warehouse, landing=False) as opened:
        for spec in catalog:
            if not opened.fetch(sql.table_exists(spec.table))[0][0]:
                counts[spec.resource_type] = 0
                continue
            query = f"SELECT COUNT(*) FROM {sql.qualified(spec.table)} WHERE NOT deleted"  # noqa: S608
            if server is not None:
                query += f" AND source_server = {opened.dialect.literal(server)}"
            counts[spec.resource_type] = int(opened.fetch(query)[0][0])
    return counts


def demo_environment(today: date | None = None) -> dict[str, str]:
    """What the demo and ``make ui`` share, so the UI shows the partitions the demo filled: daily
    partitions from the first of this month (older data folds into the first one) and no lag
    (the sandbox's data is written before the demo starts)."""
    today = today or datetime.now(UTC).date()
    return {
        "FHIR_PARTITIONS": "daily",
        "FHIR_SYNC_START": today.replace(day=1).isoformat(),
        "FHIR_SYNC_LAG_MINUTES": "0",
    }


def run_demo(
    sandbox: Sandbox,
    warehouse: WarehouseSettings,
    catalog: tuple[ResourceSpec, ...] = CATALOG,
    instance: DagsterInstance | None = None,
) -> list[TableCount]:
    """Backfill every raw asset's partitions from a running sandbox into the warehouse (one
    in-process run over the whole range, as a UI backfill runs it), then build the views.

    Args:
        instance: the Dagster instance to record the runs in; by default the persistent one in
            ``<sandbox home>/dagster``, so the runs show up in ``make ui``.

    Returns:
        per type, what the server holds and what landed.
    """
    from ..assets.defs import build_defs

    settings = sandbox_settings(
        sandbox,
        warehouse,
        FHIR_RESOURCE_TYPES=",".join(spec.resource_type for spec in catalog),
        **demo_environment(),
    )
    defs = build_defs(settings)
    sync_all = defs.resolve_job_def("sync_all")
    keys = sync_all.partitions_def.get_partition_keys()  # type: ignore[union-attr]
    instance = instance or demo_instance(sandbox.home)
    # the documented tags of a single-run backfill of a partition range (in-process runs)
    whole = {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }
    result = sync_all.execute_in_process(instance=instance, run_config=QUIET, tags=whole)
    if not result.success:
        raise RuntimeError("the sync_all run failed; see the Dagster event log above")
    materialize_the_rest(defs, instance, {spec.resource_type for spec in catalog})
    server = sandbox.counts([spec.resource_type for spec in catalog])
    landed = warehouse_counts(warehouse, catalog, server=redact(sandbox.base_url))
    return [
        TableCount(
            s.resource_type,
            f"{RAW_SCHEMA}.{s.table}",
            server[s.resource_type],
            landed[s.resource_type],
        )
        for s in catalog
    ]


def materialize_the_rest(defs: Definitions, instance: DagsterInstance, types: set[str]) -> None:
    """After the raw assets: the views and, when Patient and Observation landed, the write-back
    example as a dry run (validated and diffed against the sandbox, nothing written: `fhir-assets
    writeback` writes). One run of the code location's own asset job, as "Materialize" in the UI
    launches it: no job of the demo's own shows in the run history."""
    import dagster as dg

    from ..assets.views import GROUP as VIEWS
    from ..assets.writeback import GROUP as WRITEBACK
    from .writeback_demo import WRITEBACK_OP

    groups = [VIEWS, WRITEBACK] if {"Patient", "Observation"} <= types else [VIEWS]
    selection = dg.AssetSelection.groups(*groups).resolve(defs.resolve_asset_graph())
    config = dict(QUIET)
    if WRITEBACK in groups:
        config["ops"] = {WRITEBACK_OP: {"config": {"dry_run": True}}}
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, run_config=config, asset_selection=sorted(selection)
    )
    if not result.success:
        raise RuntimeError("the views / write-back run failed; see the Dagster event log above")


def format_counts(counts: list[TableCount], warehouse: str = "duckdb") -> str:
    """A plain table of the counts, with a total line."""
    lines = [f"{'table':34} {'server':>8} {warehouse:>9}"]
    for c in counts:
        mark = "" if c.server == c.warehouse else "  MISMATCH"
        lines.append(f"{c.table:34} {c.server:8d} {c.warehouse:9d}{mark}")
    total_server = sum(c.server for c in counts)
    total_landed = sum(c.warehouse for c in counts)
    lines.append(f"{'total':34} {total_server:8d} {total_landed:9d}")
    return "\n".join(lines)
