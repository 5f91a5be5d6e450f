"""One raw asset per catalog entry: search the FHIR server, land every resource of the type.

A sync pages the server into a local spool first (``spool.py``) and opens the warehouse only to
land what it spooled, so a DuckDB file is locked for the write, not the fetch (a foreign
holder is waited for in ``warehouse/duckdb_file.py``, ``FHIR_DUCKDB_LOCK_WAIT_S``).
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from ..catalog import ResourceSpec
from ..fhir.client import FhirClient, redact
from ..fhir.errors import RequestError
from ..fhir.window import Window, format_instant
from ..partitions import Partitioning, backfill_condition, single_run_backfills, sync_windows
from ..resources import FhirServerResource
from ..sync import build_sync_queries, build_window_sync
from ..warehouse.io_managers import raw_table_metadata
from ..warehouse.landing import LandingOptions, land
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import Provenance, WarehouseOpener
from .checks import raw_check_results, raw_check_specs
from .partition_metadata import range_metadata, record_partitions
from .spool import Spool
from .tables import table_metadata

GROUP = "fhir_raw"


def build_raw_asset(
    spec: ResourceSpec,
    partitioning: Partitioning | None = None,
    options: LandingOptions | None = None,
    warehouse_kind: str = "duckdb",
    io_manager_key: str | None = None,
    pool: str | None = None,
    *,
    max_invalid_share: float = 0.01,
) -> dg.AssetsDefinition:
    """The raw asset ``["fhir_raw", "<type lower>"]`` for one resource type.

    Unpartitioned it syncs the whole history; with ``partitioning`` each run syncs its partition
    (or, for a backfill, its whole partition range in one run) as ``_lastUpdated`` windows.

    It lands through ``warehouse.landing.land`` with the ``landing`` resource (validated,
    merged, quarantined) rather than returning a DataFrame to an IO manager: dagster-duckdb's
    and dagster-snowflake's ``DbIOManager`` empty the table (or partition) before writing, which
    defeats MERGE, and they need the whole output in memory. ``io_manager_key`` (``fhir_io`` in
    ``build_defs``) is there for reading: downstream assets load the table as a DataFrame
    (``warehouse/io_managers.py``). ``pool`` is the FHIR server's pool
    (:func:`fhir_assets.pools.fhir_pool`).
    The table's checks (``checks.py``) run in the same step, right after the landing.
    """

    with single_run_backfills():
        decorator = dg.asset(
            name=spec.table,
            key_prefix=[RAW_SCHEMA],
            group_name=GROUP,
            kinds={"fhir", warehouse_kind},
            io_manager_key=io_manager_key,
            metadata=raw_table_metadata(partitioning is not None),
            description=f"Every FHIR {spec.resource_type} on the server, one row per resource "
            f"(raw JSON plus id, version and lastUpdated).",
            tags={"fhir/resource_type": spec.resource_type},
            partitions_def=partitioning.partitions_def() if partitioning else None,
            backfill_policy=dg.BackfillPolicy.single_run() if partitioning else None,
            automation_condition=backfill_condition() if partitioning else None,
            pool=pool,
            check_specs=raw_check_specs(spec),
        )

    @decorator
    def raw_asset(
        context: AssetExecutionContext,
        fhir: FhirServerResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> dg.MaterializeResult:
        return sync_raw(context, spec, partitioning, options, fhir, landing, max_invalid_share)

    return raw_asset


def sync_raw(
    context: AssetExecutionContext,
    spec: ResourceSpec,
    partitioning: Partitioning | None,
    options: LandingOptions | None,
    fhir: FhirServerResource,
    landing: WarehouseOpener,
    max_invalid_share: float = 0.01,
) -> dg.MaterializeResult:
    """Page the server into a spool (no warehouse open), then land the spool and check the table
    in one short open."""
    started_at = datetime.now(UTC)
    started = time.monotonic()
    fhir.require_read(spec.resource_type)  # granted scopes checked before any data is pulled
    time_window = context.partition_time_window if partitioning else None
    window, windows = sync_windows(partitioning, time_window, started_at)
    server = redact(fhir.base_url)
    provenance = Provenance(server, context.run.run_id, started_at)
    with tempfile.TemporaryDirectory(prefix="fhir-spool-") as folder, fhir.get_client() as client:
        sync = build_window_sync(client, fhir)
        spool = Spool(Path(folder))
        queries = build_sync_queries(sync, fhir, spec, windows)
        for number, page in enumerate(sync.pages(queries), 1):
            spool.write(f"{server}/{spec.resource_type} search page {number}", page)
        source = {
            "source_count": count_at_source(client, spec.resource_type, window),
            "source_count_until": window.end.isoformat(),
            "source_server": server,
        }
        fetched_s = time.monotonic() - started
        with landing.open_warehouse() as warehouse:
            result = land(warehouse, spec.resource_type, spool.entries(), provenance, options)
            table = table_metadata(warehouse, RAW_SCHEMA, spec.table)
            landed = {**source, **result.metadata()}
            checks = raw_check_results(warehouse, spec, landed, max_invalid_share)
            keys: list[str] = []
            if partitioning is not None:  # each partition its own window and counts
                keys = record_partitions(context, partitioning, warehouse, spec.table)
    seconds = time.monotonic() - started
    metadata: dict[str, Any] = {
        **sync.metadata(),
        "resources": result.seen,
        **landed,
        "window": str(window),
        "fetch_s": round(fetched_s, 3),
        "write_s": round(seconds - fetched_s, 3),
        "duration_s": round(seconds, 3),
        "resources_per_s": round(result.seen / seconds, 1) if seconds else 0.0,
        **table,
    }
    return dg.MaterializeResult(
        metadata=range_metadata(context, metadata, keys), check_results=checks
    )


def count_at_source(client: FhirClient, resource_type: str, window: Window) -> int | None:
    """What the server holds of the type last updated before the window's end (its own count),
    or ``None`` when it cannot say (no ``_summary=count`` or no ``_lastUpdated`` search)."""
    params = {"_summary": "count", "_lastUpdated": f"lt{format_instant(window.end)}"}
    try:
        total = client.get(resource_type, params).get("total")
    except RequestError:
        return None
    return total if isinstance(total, int) else None


def build_raw_assets(
    catalog: tuple[ResourceSpec, ...],
    partitioning: Partitioning | None = None,
    options: LandingOptions | None = None,
    warehouse_kind: str = "duckdb",
    io_manager_key: str | None = None,
    pool: str | None = None,
    *,
    max_invalid_share: float = 0.01,
) -> list[dg.AssetsDefinition]:
    """Raw assets for every catalog entry (partitioned by ``_lastUpdated`` when given), each
    with its checks."""
    return [
        build_raw_asset(
            spec,
            partitioning,
            options,
            warehouse_kind,
            io_manager_key,
            pool,
            max_invalid_share=max_invalid_share,
        )
        for spec in catalog
    ]
