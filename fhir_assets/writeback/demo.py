"""The write-back demo: sandbox -> land Patient and Observation -> score -> write back, twice.

The second run shows idempotence: everything is ``unchanged``. Dagster is imported inside the
function, so ``fhir_assets.writeback`` itself stays usable without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..sandbox import Sandbox

WRITEBACK_OP = "fhir_writeback__abnormal_count_observation"
COUNTS = ("created", "updated", "unchanged", "conflicts", "failed")


def run_writeback_demo(
    sandbox: Sandbox, duckdb_path: Path, *, runs: int = 2, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Run the ``writeback_example`` job ``runs`` times against the sandbox.

    Returns:
        the write-back asset's materialization metadata of each run.

    Raises:
        RuntimeError: a run failed.
    """
    from dagster import AssetKey, DagsterInstance

    from ..definitions import build_definitions
    from ..demo import dagster_home, patched_environ

    env = sandbox.environment() | {
        "FHIR_DUCKDB_PATH": str(duckdb_path),
        "FHIR_RESOURCE_TYPES": "Patient,Observation",
        "FHIR_WRITE_SCOPES": "system/*.read system/*.write",
        "DAGSTER_HOME": str(dagster_home(sandbox.home)),
    }
    config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "ops": {WRITEBACK_OP: {"config": {"dry_run": dry_run}}},
    }
    reports = []
    with patched_environ(env):
        job = build_definitions().resolve_job_def("writeback_example")
        for _ in range(runs):
            result = job.execute_in_process(instance=DagsterInstance.get(), run_config=config)
            if not result.success:
                raise RuntimeError("the writeback_example run failed; see the event log above")
            [event] = [
                e
                for e in result.get_asset_materialization_events()
                if e.asset_key == AssetKey(["fhir_writeback", "abnormal_count_observation"])
            ]
            metadata = event.materialization.metadata
            reports.append({k: v.value for k, v in metadata.items()})
    return reports


def format_reports(reports: list[dict[str, Any]]) -> str:
    """One line of counts per run."""
    lines = []
    for number, report in enumerate(reports, start=1):
        counts = ", ".join(f"{name} {report[name]}" for name in COUNTS)
        mode = " (dry run: would be; nothing written)" if report.get("dry_run") else ""
        lines.append(f"run {number}{mode}: {counts}")
    return "\n".join(lines)
