"""Each partition's own window and counts, also when one run lands a whole partition range.

A single-run backfill (``BackfillPolicy.single_run()``) searches its range as one window, and
Dagster records one materialization per partition of the range, each with the metadata the asset
returned: without this module every partition would show the range's window and the range's
counts. Dagster 1.13 merges partition-scoped metadata (``context.add_asset_metadata(...,
partition_key=...)``) over the returned metadata for that partition's event only
(``dagster/_core/execution/plan/execute_step.py``, ``_get_output_asset_events``), so each
partition gets its own ``window`` and counts read back from the table, and the run's figures move
to ``run_*`` keys (``run_wide``).

Dagster stores every partition's event whole, twice (the event row and the asset's latest
record), and a one-year range is 366 events per type: so the run's figures and the table's
(``dagster/row_count``, ``dagster/column_schema``: about 6 of a 9 KB event) are
carried by the newest partition's event only, the one stored last, which the asset's page shows
as its latest materialization (``range_metadata``). Every other partition's event holds its own
window and counts and the server's names.
"""

# No `from __future__ import annotations`: kept like the asset modules Dagster inspects.
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from ..fhir.window import Window, format_instant
from ..partitions import Partitioning
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import Warehouse
from ..warehouse.sql import quoted

# What describes the server or the table, not the run: kept as is on every partition's event.
SHARED = ("server", "server_profile", "source_server")


def run_wide(metadata: dict[str, Any], partitions: int) -> dict[str, Any]:
    """``metadata`` of a run over ``partitions`` partitions: when more than one, every figure of
    the run (window, counts, timings, requests) renamed ``run_<key>``, so no partition's event
    shows the range's figures as its own; the table's (``dagster/...``) and the server's stay."""
    if partitions <= 1:
        return metadata
    renamed = {
        k if k.startswith("dagster/") or k in SHARED else f"run_{k}": v for k, v in metadata.items()
    }
    return {**renamed, "run_partitions": partitions}


def range_metadata(
    context: AssetExecutionContext, metadata: dict[str, Any], keys: list[str]
) -> dict[str, Any]:
    """The metadata a run over the partition ``keys`` returns for every partition's event: all of
    ``metadata`` for one partition; for a range, the server's names only, and the run's figures
    (``run_wide``) with the table's go to the newest partition's event."""
    if len(keys) <= 1:
        return metadata
    wide = run_wide(metadata, len(keys))
    context.add_asset_metadata(wide, partition_key=keys[-1])
    return {k: v for k, v in wide.items() if k in SHARED}


def partition_windows(
    context: AssetExecutionContext, partitioning: Partitioning
) -> dict[str, Window | None]:
    """Each partition key of the run with the window synced for it; ``None`` for a partition
    that lies wholly within the lag (nothing of it is synced yet)."""
    partitions_def = context.assets_def.partitions_def
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return {}
    windows: dict[str, Window | None] = {}
    for key in context.partition_keys:
        span = partitions_def.time_window_for_partition_key(key)
        try:
            windows[key] = partitioning.window(span.start, span.end)
        except dg.Failure:
            windows[key] = None
    return windows


def partition_counts(
    warehouse: Warehouse, table: str, windows: dict[str, Window], sync_id: str
) -> dict[str, tuple[int, int, int]]:
    """Per partition key: live rows, tombstones, and rows this run wrote (new or changed),
    of the table rows whose ``last_updated`` falls in the key's window. One query."""
    if not windows:
        return {}
    d = warehouse.dialect
    bounds = ", ".join(
        "("
        + ", ".join(d.literal(v) for v in (key, format_instant(w.start), format_instant(w.end)))
        + ")"
        for key, w in windows.items()
    )
    name = quoted(d, RAW_SCHEMA, table)
    start, end = d.to_timestamp("b.s"), d.to_timestamp("b.e")
    rows = warehouse.fetch(
        "SELECT b.k, "  # noqa: S608 (keys, instants and the run id as literals; a catalog table)
        "COALESCE(SUM(CASE WHEN t.id IS NULL OR t.deleted THEN 0 ELSE 1 END), 0), "
        "COALESCE(SUM(CASE WHEN t.deleted THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN t.sync_id = {d.literal(sync_id)} THEN 1 ELSE 0 END), 0) "
        f"FROM (VALUES {bounds}) AS b(k, s, e) LEFT JOIN {name} AS t "
        f"ON t.last_updated >= {start} AND t.last_updated < {end} GROUP BY b.k"
    )
    return {str(k): (int(live), int(gone), int(ours)) for k, live, gone, ours in rows}


def record_partitions(
    context: AssetExecutionContext, partitioning: Partitioning, warehouse: Warehouse, table: str
) -> list[str]:
    """Give each partition of the run its own window and counts; the run's partition keys, oldest
    first."""
    windows = partition_windows(context, partitioning)
    synced = {key: w for key, w in windows.items() if w is not None}
    counts = partition_counts(warehouse, table, synced, context.run.run_id)
    partitions_def = context.assets_def.partitions_def
    for key, window in windows.items():
        span = partitions_def.time_window_for_partition_key(key)  # type: ignore[union-attr]
        live, gone, ours = counts.get(key, (0, 0, 0))
        context.add_asset_metadata(
            {
                "window": str(window) if window else "not synced yet (within the lag)",
                "resources": live,
                "deleted": gone,
                "written_by_run": ours,
                # a partition is complete once its end is older than the lag
                "partial": window is None or window.end < span.end,
            },
            partition_key=key,
        )
    return list(windows)
