"""The demo: sandbox -> every raw asset -> DuckDB, then the row counts side by side."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from .catalog import CATALOG, ResourceSpec
from .fhir.client import redact
from .sandbox import Sandbox
from .warehouse.layout import RAW_SCHEMA

if TYPE_CHECKING:
    from dagster import DagsterInstance

DAGSTER_YAML = "telemetry:\n  enabled: false\n"


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


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def warehouse_counts(
    path: Path, catalog: tuple[ResourceSpec, ...], server: str | None = None
) -> dict[str, int]:
    """Current rows (tombstones excluded) per raw table in the DuckDB file (0 if missing).

    Rows are kept per source server; with ``server``, only that server's rows count (each
    sandbox start has a new port, hence a new server URL).
    """
    counts = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for spec in catalog:
            try:
                # table names come from the catalog, not from input
                sql = f'select count(*) from {RAW_SCHEMA}."{spec.table}" where not deleted'  # noqa: S608
                if server is not None:
                    sql += " and source_server = ?"
                row = con.execute(sql, [server] if server is not None else []).fetchone()
            except duckdb.CatalogException:
                row = (0,)
            counts[spec.resource_type] = int(row[0]) if row else 0
    return counts


def run_demo(
    sandbox: Sandbox,
    duckdb_path: Path,
    catalog: tuple[ResourceSpec, ...] = CATALOG,
    instance: DagsterInstance | None = None,
) -> list[TableCount]:
    """Materialize every raw asset from a running sandbox into ``duckdb_path``.

    Args:
        instance: the Dagster instance to record the run in; by default the persistent one in
            ``<sandbox home>/dagster``, so the run shows up in ``make ui``.

    Returns:
        per type, what the server holds and what landed.
    """
    from dagster import DagsterInstance

    from .definitions import build_definitions

    env = sandbox.environment() | {
        "FHIR_DUCKDB_PATH": str(duckdb_path),
        "FHIR_RESOURCE_TYPES": ",".join(spec.resource_type for spec in catalog),
        "FHIR_PARTITIONS": "none",  # the demo lands the whole history in one run
        "DAGSTER_HOME": str(dagster_home(sandbox.home)),
    }
    with patched_environ(env):
        defs = build_definitions()
        job = defs.resolve_job_def("sync_all")
        result = job.execute_in_process(
            instance=instance or DagsterInstance.get(),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    if not result.success:
        raise RuntimeError("the sync_all run failed; see the Dagster event log above")
    server = sandbox.counts([spec.resource_type for spec in catalog])
    landed = warehouse_counts(duckdb_path, catalog, server=redact(sandbox.base_url))
    return [
        TableCount(
            s.resource_type,
            f"{RAW_SCHEMA}.{s.table}",
            server[s.resource_type],
            landed[s.resource_type],
        )
        for s in catalog
    ]


def format_counts(counts: list[TableCount]) -> str:
    """A plain table of the counts, with a total line."""
    lines = [f"{'table':34} {'server':>8} {'duckdb':>8}"]
    for c in counts:
        mark = "" if c.server == c.warehouse else "  MISMATCH"
        lines.append(f"{c.table:34} {c.server:8d} {c.warehouse:8d}{mark}")
    total_server = sum(c.server for c in counts)
    total_landed = sum(c.warehouse for c in counts)
    lines.append(f"{'total':34} {total_server:8d} {total_landed:8d}")
    return "\n".join(lines)
