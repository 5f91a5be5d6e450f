"""One raw asset per catalog entry: search the FHIR server, land every resource of the type."""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from ..catalog import ResourceSpec
from ..fhir.search import keep_latest
from ..partitions import Partitioning, sync_windows
from ..resources import FhirServerResource
from ..sync import build_sync_queries, build_window_sync
from ..warehouse.layout import RAW_SCHEMA, raw_frame, raw_row

GROUP = "fhir_raw"


def build_raw_asset(
    spec: ResourceSpec, partitioning: Partitioning | None = None
) -> dg.AssetsDefinition:
    """The raw asset ``["fhir_raw", "<type lower>"]`` for one resource type.

    Unpartitioned it syncs the whole history; with ``partitioning`` each run syncs its partition
    (or, for a backfill, its whole partition range in one run) as ``_lastUpdated`` windows.
    """

    @dg.asset(
        name=spec.table,
        key_prefix=[RAW_SCHEMA],
        group_name=GROUP,
        io_manager_key="warehouse",
        kinds={"fhir"},
        description=f"Every FHIR {spec.resource_type} on the server, one row per resource "
        f"(raw JSON plus id, version and lastUpdated).",
        tags={"fhir/resource_type": spec.resource_type},
        partitions_def=partitioning.partitions_def() if partitioning else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioning else None,
        metadata={"partition_expr": partitioning.partition_expr()} if partitioning else None,
    )
    def raw_asset(context: AssetExecutionContext, fhir: FhirServerResource) -> pd.DataFrame:
        ingested_at = datetime.now(UTC)
        fhir.require_read(spec.resource_type)  # granted scopes checked before any data is pulled
        time_window = context.partition_time_window if partitioning else None
        window, windows = sync_windows(partitioning, time_window, ingested_at)
        latest: dict[str, dict[str, Any]] = {}
        with fhir.get_client() as client:
            sync = build_window_sync(client, fhir)
            for page in sync.pages(build_sync_queries(sync, fhir, spec, windows)):
                keep_latest(page, latest)  # a restarted or re-paged window repeats resources
        rows = [
            raw_row(
                r, source_server=fhir.base_url, sync_id=context.run.run_id, ingested_at=ingested_at
            )
            for r in latest.values()
        ]
        frame = raw_frame(rows)
        context.add_output_metadata(
            {"resources": len(frame), "window": str(window), **sync.metadata()}
        )
        return frame

    return raw_asset


def build_raw_assets(
    catalog: tuple[ResourceSpec, ...], partitioning: Partitioning | None = None
) -> list[dg.AssetsDefinition]:
    """Raw assets for every catalog entry (partitioned by ``_lastUpdated`` when given)."""
    return [build_raw_asset(spec, partitioning) for spec in catalog]
