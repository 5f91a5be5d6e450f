"""The demo: sandbox -> every raw asset -> the warehouse (DuckDB, or Snowflake / its emulator),
then the row counts side by side. Built on ``build_defs(settings)``: no environment is patched."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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
    from dagster import DagsterInstance

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


def run_demo(
    sandbox: Sandbox,
    warehouse: WarehouseSettings,
    catalog: tuple[ResourceSpec, ...] = CATALOG,
    instance: DagsterInstance | None = None,
) -> list[TableCount]:
    """Materialize every raw asset from a running sandbox into the warehouse.

    Args:
        instance: the Dagster instance to record the run in; by default the persistent one in
            ``<sandbox home>/dagster``, so the run shows up in ``make ui``.

    Returns:
        per type, what the server holds and what landed.
    """
    from ..assets.defs import build_defs

    settings = sandbox_settings(
        sandbox,
        warehouse,
        FHIR_RESOURCE_TYPES=",".join(spec.resource_type for spec in catalog),
        FHIR_PARTITIONS="none",  # the demo lands the whole history in one run
    )
    job = build_defs(settings).resolve_job_def("sync_all")
    result = job.execute_in_process(
        instance=instance or demo_instance(sandbox.home), run_config=QUIET
    )
    if not result.success:
        raise RuntimeError("the sync_all run failed; see the Dagster event log above")
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
