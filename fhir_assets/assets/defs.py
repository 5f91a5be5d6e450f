"""``build_defs(settings)``: the whole Dagster code location from one :class:`Settings`.

Pure: it reads no environment. ``definitions.py`` turns the environment into ``Settings``; tests
and demos build ``Settings`` themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from ..catalog import ResourceSpec, select
from ..partitions import Partitioning
from ..pools import DUCKDB_POOL, bulk_pool, fhir_pool
from ..resources import FhirServerResource
from ..schedules import build_sync_schedule
from ..settings import FhirSettings, Settings, SyncSettings, env_name
from ..views.library import load_views
from ..warehouse.io_managers import IO_MANAGER_KEY
from ..warehouse.kinds import warehouse_kind
from ..warehouse.landing import LandingOptions
from .checks import build_reference_checks
from .deid import build_deid_layer
from .operations import build_operation_defs
from .raw import build_raw_assets
from .views import build_view_assets, build_view_sensor
from .writeback import build_abnormal_count_assets

SECRETS = ("private_key", "client_secret", "token_key", "rate_limit_postgres")


def build_fhir_resource(
    settings: Settings, catalog: tuple[ResourceSpec, ...] = (), scopes: str | None = None
) -> FhirServerResource:
    """The FHIR server resource; secrets that came from the environment stay ``dg.EnvVar``, so
    the UI shows the variable's name, never its value.

    Args:
        catalog: the types the run reads (the least scopes are computed for them).
        scopes: scopes to request instead of ``FHIR_SCOPES`` (the write-back assets' own).
    """
    fhir = settings.fhir
    secrets: dict[str, Any] = {
        name: dg.EnvVar(env_name(FhirSettings, name))
        if settings.secrets_from_env and getattr(fhir, name)
        else getattr(fhir, name)
        for name in SECRETS
    }
    return FhirServerResource(
        base_url=fhir.base_url,
        client_id=fhir.client_id,
        private_key_path=fhir.private_key_path,
        auth_method=fhir.auth_method,
        scopes=scopes or fhir.scopes,
        resource_types=[spec.resource_type for spec in catalog],
        token_url=fhir.token_url,
        jku=fhir.jku,
        token_dir=fhir.token_dir,
        server_profile=fhir.server_profile,
        patient_group=fhir.patient_group,
        requests_per_s=fhir.requests_per_s,
        workers=fhir.workers,
        limits=fhir.limits.as_dict(),
        **secrets,
    )


def build_partitioning(sync: SyncSettings) -> Partitioning | None:
    """Partitions from ``FHIR_PARTITIONS`` / ``FHIR_SYNC_START`` / ``FHIR_SYNC_LAG_MINUTES``."""
    kind = sync.partitions.strip().lower()
    if kind == "none":
        return None
    if kind not in {"daily", "hourly"}:
        raise ValueError(f"FHIR_PARTITIONS must be daily, hourly or none, not {kind!r}")
    start = datetime.fromisoformat(sync.sync_start)
    return Partitioning(
        start=start.replace(tzinfo=start.tzinfo or UTC),
        hourly=kind == "hourly",
        lag=timedelta(minutes=sync.sync_lag_minutes),
    )


def build_warehouse_resources(settings: Settings) -> dict[str, Any]:
    """``landing`` (the one warehouse: landing, checks, views, write-back) and ``fhir_io`` (the
    IO manager that loads our tables into users' assets), for ``FHIR_WAREHOUSE``.

    Snowflake modules are imported only in Snowflake mode: they take seconds to import.
    """
    landing, io_manager = warehouse_kind(settings.warehouse.kind).resources(settings)
    return {"landing": landing, IO_MANAGER_KEY: io_manager}


def landing_options(sync: SyncSettings) -> LandingOptions:
    """How raw assets and bulk exports land."""
    return LandingOptions(
        validation=sync.validation, history=sync.history, max_line_bytes=sync.max_line_bytes
    )


def sync_executor(kind: str) -> dg.ExecutorDefinition:
    """How ``sync_all`` runs its steps. DuckDB: in one process, one type after another (one
    writer per file anyway, and a process per type costs seconds of imports each); Snowflake:
    Dagster's multiprocess executor, one process per type (or a pod, with a Kubernetes one
    configured on the deployment)."""
    one_writer = warehouse_kind(kind).one_writer
    return dg.in_process_executor if one_writer else dg.multiprocess_executor


def build_defs(settings: Settings) -> dg.Definitions:
    """Raw, view and write-back assets, checks, jobs, schedule and resources for ``settings``."""
    catalog = select(settings.sync.resource_types)
    partitioning = build_partitioning(settings.sync)
    kind = settings.warehouse.kind
    options = landing_options(settings.sync)
    pool = fhir_pool(settings.fhir.base_url)  # steps that talk to the server
    # steps that only work in the file (DuckDB: one writer at a time)
    file_pool = DUCKDB_POOL if warehouse_kind(kind).one_writer else None
    raw_assets = build_raw_assets(
        catalog,
        partitioning,
        options,
        kind,
        IO_MANAGER_KEY,
        pool,
        max_invalid_share=settings.sync.max_invalid_share,
    )
    types = {spec.resource_type for spec in catalog}
    views = load_views(settings.sync.views_dir, types)
    write = settings.write
    if write.conflict_policy not in ("fail", "server-wins", "client-wins"):
        raise ValueError(
            f"FHIR_WRITE_CONFLICT_POLICY={write.conflict_policy!r}: fail, server-wins or "
            "client-wins"
        )
    writeback = build_abnormal_count_assets(
        write.batch_size,
        on_conflict=write.conflict_policy,  # type: ignore[arg-type]
        server_validate=write.server_validate,
        warehouse=kind,
        pool=pool,
    )
    deid_assets, deid_sensors, deid_resources = build_deid_layer(settings, views, file_pool)
    sync_all = dg.define_asset_job(
        "sync_all",
        selection=dg.AssetSelection.groups("fhir_raw"),
        executor_def=sync_executor(kind),
    )
    operations = build_operation_defs(settings.operations, catalog, options, pool)
    return dg.Definitions(
        assets=[
            *operations.assets,
            *raw_assets,
            *build_view_assets(views, kind, IO_MANAGER_KEY, file_pool),
            *deid_assets,
            *writeback,
        ],
        asset_checks=[*build_reference_checks(catalog, file_pool), *operations.checks],
        jobs=[
            sync_all,
            # the write-back example and the raw tables it reads (when they are in the catalog)
            dg.define_asset_job(
                "writeback_example",
                selection=dg.AssetSelection.groups("fhir_writeback").upstream(),
            ),
        ],
        schedules=[build_sync_schedule(sync_all, partitioning)] if partitioning else [],
        sensors=[*([build_view_sensor()] if views else []), *deid_sensors],  # running by default
        resources={
            "fhir": build_fhir_resource(settings, catalog),
            "fhir_writer": build_fhir_resource(settings, scopes=write.scopes),
            **build_warehouse_resources(settings),
            **deid_resources,
        },
    )


def build_bulk_defs(settings: Settings) -> dg.Definitions:
    """Bulk Data exports: the ``bulk_land`` job, its export partitions and its two sensors, and
    the raw assets' partition backfill sensor (all stopped by default)."""
    from ..sensors import build_backfill_sensor, build_export_sensor, build_raw_backfill_sensor
    from .bulk import BulkExportResource, build_bulk_asset, build_bulk_job

    bulk_settings, sync = settings.bulk, settings.sync
    bulk = BulkExportResource(
        folder=bulk_settings.folder,
        level=bulk_settings.level,
        group_id=bulk_settings.group_id,
        types=bulk_settings.types or sync.resource_types or "",
        lenient=bulk_settings.lenient,
        max_line_bytes=sync.max_line_bytes,
    )
    sensors = [build_export_sensor(bulk_settings.interval_s), build_backfill_sensor()]
    partitioning = build_partitioning(sync)
    catalog = select(sync.resource_types)
    if partitioning is not None:  # the raw assets' time partitions, backfilled by sync_all
        raw_keys = [dg.AssetKey(["fhir_raw", spec.table]) for spec in catalog]
        sensors.append(build_raw_backfill_sensor(raw_keys))
    return dg.Definitions(
        assets=[
            # its own pool: an export holds its step for hours (fhir_assets/pools.py)
            build_bulk_asset(landing_options(sync), bulk_pool(settings.fhir.base_url))
        ],
        jobs=[build_bulk_job()],
        sensors=sensors,
        resources={"bulk": bulk},
    )


def build_all_defs(settings: Settings) -> dg.Definitions:
    """The code location: REST sync, views, write-back and bulk exports."""
    return dg.Definitions.merge(build_defs(settings), build_bulk_defs(settings))
