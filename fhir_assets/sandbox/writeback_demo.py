"""The write-back demo: sandbox -> land Patient and Observation -> score -> write back, twice.

The second run shows idempotence: everything is ``unchanged``. It lives with the sandbox, above
the engine: ``fhir_assets.writeback`` knows nothing of demos or Dagster definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..warehouse.settings import WarehouseSettings
from .demo import QUIET, demo_instance, sandbox_settings
from .server import Sandbox

if TYPE_CHECKING:
    from dagster import DagsterInstance

WRITEBACK_OP = "fhir_writeback__abnormal_count_observation"
COUNTS = ("created", "updated", "unchanged", "conflicts", "failed")


def run_writeback_demo(
    sandbox: Sandbox,
    warehouse: WarehouseSettings,
    *,
    runs: int = 2,
    dry_run: bool = False,
    instance: DagsterInstance | None = None,
) -> list[dict[str, Any]]:
    """Run the ``writeback_example`` job ``runs`` times against the sandbox.

    Returns:
        the write-back asset's materialization metadata of each run.

    Raises:
        RuntimeError: a run failed.
    """
    from dagster import AssetKey

    from ..assets.defs import build_defs

    settings = sandbox_settings(
        sandbox,
        warehouse,
        FHIR_RESOURCE_TYPES="Patient,Observation",
        FHIR_PARTITIONS="none",  # one run lands the whole history before scoring
        FHIR_WRITE_SCOPES="system/*.read system/*.write",
    )
    config = {**QUIET, "ops": {WRITEBACK_OP: {"config": {"dry_run": dry_run}}}}
    job = build_defs(settings).resolve_job_def("writeback_example")
    reports = []
    for _ in range(runs):
        result = job.execute_in_process(
            instance=instance or demo_instance(sandbox.home), run_config=config
        )
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
