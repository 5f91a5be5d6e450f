"""The schedule that syncs the newest complete partition of the raw assets."""

# No `from __future__ import annotations`: Dagster inspects the real annotation objects.

from typing import Any

import dagster as dg

from .partitions import Partitioning


def build_sync_schedule(job: Any, partitioning: Partitioning) -> dg.ScheduleDefinition:
    """Run ``job`` (a job, or what ``define_asset_job`` returns: its type is not public API)
    for the newest complete partition, a few minutes after it closes.

    Each day (or hour) at ``lag + 5`` minutes past the boundary: the partition that ended then
    is complete (its last writes are older than ``lag``). A run key per partition keeps one run
    per partition even when the daemon evaluates the tick twice.
    """
    minute = int(partitioning.lag.total_seconds() // 60) + 5
    cron = f"{minute} * * * *" if partitioning.hourly else f"{minute} 0 * * *"

    def newest_complete(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        key = partitioning.newest_complete_key(context.scheduled_execution_time)
        if key is None:
            return dg.SkipReason("no partition is complete yet")
        return dg.RunRequest(run_key=key, partition_key=key)

    return dg.ScheduleDefinition(
        name=f"{job.name}_schedule",
        cron_schedule=cron,
        job=job,
        execution_fn=newest_complete,
        execution_timezone="UTC",
        description="Syncs the newest complete _lastUpdated partition of every raw asset.",
    )
