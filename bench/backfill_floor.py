"""Dagster's own share of a range run: the raw assets' bookkeeping with none of their work.

``floor_asset`` builds, for one type, an asset with the raw asset's key, partitions, backfill
policy and (optionally) its four checks, which only records what the raw asset records per
partition (five metadata entries, the server's names on every event, a run figure on the
newest) and returns the check results: no server, no warehouse. Timing ``floor``'s one-year
range run against ``fhir-assets demo`` shows the ratio no change to the raw assets' own code
can go below.
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from fhir_assets.assets.checks import raw_check_specs
from fhir_assets.assets.partition_metadata import SHARED
from fhir_assets.catalog import ResourceSpec
from fhir_assets.partitions import Partitioning
from fhir_assets.warehouse.layout import RAW_SCHEMA


def floor_asset(spec: ResourceSpec, partitioning: Partitioning, checks: bool) -> Any:
    """A do-nothing asset that Dagster records as it records the raw asset of ``spec``."""

    specs = raw_check_specs(spec) if checks else []

    @dg.asset(
        name=spec.table,
        key_prefix=[RAW_SCHEMA],
        partitions_def=partitioning.partitions_def(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=specs or None,
    )
    def bare(context: AssetExecutionContext) -> dg.MaterializeResult:
        keys = list(context.partition_keys)
        for key in keys:
            context.add_asset_metadata(
                {"window": key, "resources": 0, "deleted": 0, "written_by_run": 0, "partial": 0},
                partition_key=key,
            )
        context.add_asset_metadata({"run_partitions": len(keys)}, partition_key=keys[-1])
        results = [dg.AssetCheckResult(check_name=s.name, passed=True) for s in specs]
        return dg.MaterializeResult(
            metadata=dict.fromkeys(SHARED, "bench"), check_results=results or None
        )

    return bare


def floor(
    catalog: tuple[ResourceSpec, ...],
    partitioning: Partitioning,
    tags: dict[str, str],
    checks: bool,
) -> tuple[float, float]:
    """Seconds and CPU seconds of the do-nothing range run (in-memory instance)."""
    assets = [floor_asset(spec, partitioning, checks) for spec in catalog]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started, cpu = time.monotonic(), time.process_time()
    result = dg.materialize(assets, tags=tags, run_config=quiet)
    if not result.success:
        raise RuntimeError("the floor run failed")
    return time.monotonic() - started, time.process_time() - cpu
