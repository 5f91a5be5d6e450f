"""The Dagster Definitions: the only module that reads the deployment environment.

Environment:
    FHIR_BASE_URL            FHIR base URL (required to run assets)
    FHIR_CLIENT_ID           SMART Backend Services client id
    FHIR_PRIVATE_KEY_PATH    its private key (PEM or JWK file)
    FHIR_PRIVATE_KEY         or the private key's text itself (secret)
    FHIR_CLIENT_SECRET       client secret (client-secret methods; secret)
    FHIR_AUTH_METHOD         backend-services | client-secret-basic | client-secret-post |
                             authorization-code | none (inferred from the above when unset)
    FHIR_SCOPES              scopes to request (default: the least set for the selected types)
    FHIR_TOKEN_URL           token endpoint (default: SMART discovery)
    FHIR_JKU                 URL of the client's published JWKS, sent as the assertion's ``jku``
    FHIR_TOKEN_DIR           folder of the encrypted authorization-code tokens
    FHIR_TOKEN_KEY           their encryption key (secret; default: the OS keyring)
    FHIR_RESOURCE_TYPES      comma-separated subset of the catalog (default: all)
    FHIR_DUCKDB_PATH         DuckDB file (default ``.fhir-assets/warehouse.duckdb``)
    FHIR_PARTITIONS          ``daily`` (default), ``hourly`` or ``none`` (whole history per run)
    FHIR_SYNC_START          first partition day, UTC (default 2026-01-01; older data joins it)
    FHIR_SYNC_LAG_MINUTES    windows closer than this to now are not synced (default 10)
    FHIR_SERVER_PROFILE      epic, oracle, hapi, sekmet or generic (default: detected)
    FHIR_PATIENT_GROUP       Group id of the patients to sync per patient (Epic)
    FHIR_REQUESTS_PER_S      client-side rate limit (default: the profile's)
    FHIR_SYNC_WORKERS        parallel searches per asset (default: the profile's)
    FHIR_WRITE_SCOPES        scopes the write-back assets request (default
                             ``system/*.read system/*.write``)
    FHIR_WRITE_CONFLICT_POLICY  fail | server-wins | client-wins (default ``fail``)
    FHIR_WRITE_SERVER_VALIDATE  ``1``/``true``: also ``$validate`` on the server before writing
    FHIR_WRITE_BATCH_SIZE    resources per write-back transaction (default 100)
    FHIR_VIEWS_DIR           folder of extra SQL on FHIR ViewDefinitions (``*.json``)
    FHIR_WAREHOUSE           ``duckdb`` (default) or ``snowflake``
    FHIR_VALIDATION          ``fast`` (default) or ``full`` (R4B models on every core)
    FHIR_MAX_INVALID_SHARE   invalid_share check threshold (default 0.01)
    FHIR_HISTORY             ``1`` keeps every version in ``fhir_raw.<type>_history``
    SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH,
    SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA
                             Snowflake connection in ``snowflake`` mode
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from .assets.checks import build_raw_checks
from .assets.raw import build_raw_assets
from .assets.views import build_view_assets
from .assets.writeback import build_abnormal_count_assets
from .catalog import ResourceSpec, select
from .partitions import Partitioning
from .resources import FhirServerResource
from .schedules import build_sync_schedule
from .views.library import load_views
from .warehouse.duckdb import DEFAULT_PATH
from .warehouse.landing import LandingOptions
from .warehouse.resources import DuckDBWarehouseResource


def optional_env(name: str) -> dg.EnvVar | None:
    """An ``EnvVar`` when the variable is set (so Dagster resolves it at run time), else None."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_fhir_resource(
    catalog: tuple[ResourceSpec, ...] = (), scopes: str | None = None
) -> FhirServerResource:
    """The FHIR server resource, configured from ``FHIR_*`` variables (secrets as ``EnvVar``,
    so the UI shows the variable's name, never its value).

    Args:
        catalog: the types the run reads (the least scopes are computed for them).
        scopes: scopes to request instead of ``FHIR_SCOPES`` (the write-back assets' own).
    """
    return FhirServerResource(
        base_url=dg.EnvVar("FHIR_BASE_URL"),
        client_id=optional_env("FHIR_CLIENT_ID"),
        private_key_path=optional_env("FHIR_PRIVATE_KEY_PATH"),
        private_key=optional_env("FHIR_PRIVATE_KEY"),
        client_secret=optional_env("FHIR_CLIENT_SECRET"),
        auth_method=optional_env("FHIR_AUTH_METHOD"),
        scopes=scopes or optional_env("FHIR_SCOPES"),
        resource_types=[spec.resource_type for spec in catalog],
        token_url=optional_env("FHIR_TOKEN_URL"),
        jku=optional_env("FHIR_JKU"),
        token_dir=optional_env("FHIR_TOKEN_DIR"),
        token_key=optional_env("FHIR_TOKEN_KEY"),
        server_profile=os.environ.get("FHIR_SERVER_PROFILE") or None,
        patient_group=os.environ.get("FHIR_PATIENT_GROUP") or None,
        requests_per_s=float(os.environ["FHIR_REQUESTS_PER_S"])
        if os.environ.get("FHIR_REQUESTS_PER_S")
        else None,
        workers=int(os.environ["FHIR_SYNC_WORKERS"])
        if os.environ.get("FHIR_SYNC_WORKERS")
        else None,
    )


def build_partitioning() -> Partitioning | None:
    """Partitions from ``FHIR_PARTITIONS`` / ``FHIR_SYNC_START`` / ``FHIR_SYNC_LAG_MINUTES``."""
    kind = os.environ.get("FHIR_PARTITIONS", "daily").strip().lower()
    if kind == "none":
        return None
    if kind not in {"daily", "hourly"}:
        raise ValueError(f"FHIR_PARTITIONS must be daily, hourly or none, not {kind!r}")
    start = datetime.fromisoformat(os.environ.get("FHIR_SYNC_START", "2026-01-01"))
    return Partitioning(
        start=start.replace(tzinfo=start.tzinfo or UTC),
        hourly=kind == "hourly",
        lag=timedelta(minutes=float(os.environ.get("FHIR_SYNC_LAG_MINUTES", "10"))),
    )


def build_writeback_assets() -> list[dg.AssetsDefinition]:
    """The write-back example assets, configured from ``FHIR_WRITE_*`` variables."""
    conflict = os.environ.get("FHIR_WRITE_CONFLICT_POLICY", "fail")
    if conflict not in ("fail", "server-wins", "client-wins"):
        raise ValueError(
            f"FHIR_WRITE_CONFLICT_POLICY={conflict!r}: fail, server-wins or client-wins"
        )
    return build_abnormal_count_assets(
        int(os.environ.get("FHIR_WRITE_BATCH_SIZE", "100")),
        on_conflict=conflict,  # type: ignore[arg-type]
        server_validate=os.environ.get("FHIR_WRITE_SERVER_VALIDATE", "").lower() in ("1", "true"),
    )


def duckdb_landing_env() -> dict[str, Any]:
    """FHIR_DUCKDB_MEMORY_LIMIT and FHIR_DUCKDB_LOCK_WAIT_S, where set."""
    env = {"memory_limit": "FHIR_DUCKDB_MEMORY_LIMIT", "lock_wait_s": "FHIR_DUCKDB_LOCK_WAIT_S"}
    return {key: os.environ[name] for key, name in env.items() if os.environ.get(name)}


def build_warehouse_resources() -> dict[str, Any]:
    """``landing``, where the raw assets land, for FHIR_WAREHOUSE.

    Snowflake modules are imported only in Snowflake mode: they take seconds to import.
    """
    kind = os.environ.get("FHIR_WAREHOUSE", "duckdb")
    if kind == "duckdb":
        path = os.environ.get("FHIR_DUCKDB_PATH", DEFAULT_PATH)
        return {
            "landing": DuckDBWarehouseResource(database=path, **duckdb_landing_env()),
        }
    if kind == "snowflake":
        from .warehouse.snowflake import SnowflakeWarehouseResource

        config = {
            "account": dg.EnvVar("SNOWFLAKE_ACCOUNT"),
            "user": dg.EnvVar("SNOWFLAKE_USER"),
            "password": optional_env("SNOWFLAKE_PASSWORD"),
            "private_key_path": optional_env("SNOWFLAKE_PRIVATE_KEY_PATH"),
            "role": optional_env("SNOWFLAKE_ROLE"),
            "warehouse": optional_env("SNOWFLAKE_WAREHOUSE"),
            "database": dg.EnvVar("SNOWFLAKE_DATABASE"),
            "schema": optional_env("SNOWFLAKE_SCHEMA"),
        }
        return {
            "landing": SnowflakeWarehouseResource(**config),
        }
    raise ValueError(f"FHIR_WAREHOUSE must be 'duckdb' or 'snowflake', not {kind!r}")


def build_definitions() -> dg.Definitions:
    """Assets for the selected catalog entries, with the FHIR and warehouse resources."""
    catalog = select(os.environ.get("FHIR_RESOURCE_TYPES"))
    partitioning = build_partitioning()
    options = LandingOptions(
        validation=os.environ.get("FHIR_VALIDATION", "fast"),
        history=os.environ.get("FHIR_HISTORY", "").lower() in ("1", "true", "yes"),
    )
    raw_assets = build_raw_assets(catalog, partitioning, options)
    max_share = float(os.environ.get("FHIR_MAX_INVALID_SHARE", "0.01"))
    views = load_views(os.environ.get("FHIR_VIEWS_DIR"), {s.resource_type for s in catalog})
    sync_all = dg.define_asset_job("sync_all", selection=dg.AssetSelection.groups("fhir_raw"))
    return dg.Definitions(
        assets=[*raw_assets, *build_view_assets(views), *build_writeback_assets()],
        asset_checks=build_raw_checks(catalog, max_invalid_share=max_share),
        jobs=[
            sync_all,
            # the write-back example and the raw tables it reads (when they are in the catalog)
            dg.define_asset_job(
                "writeback_example",
                selection=dg.AssetSelection.groups("fhir_writeback").upstream(),
            ),
        ],
        schedules=[build_sync_schedule(sync_all, partitioning)] if partitioning else [],
        resources={
            "fhir": build_fhir_resource(catalog),
            "fhir_writer": build_fhir_resource(
                scopes=os.environ.get("FHIR_WRITE_SCOPES", "system/*.read system/*.write")
            ),
            # views and write-back read the DuckDB file (in Snowflake mode too, for now)
            "duckdb": DuckDBResource(database=os.environ.get("FHIR_DUCKDB_PATH", DEFAULT_PATH)),
            **build_warehouse_resources(),
        },
    )


def build_bulk_definitions() -> dg.Definitions:
    """Bulk Data exports: the ``bulk_land`` job, its export partitions and its two sensors, and
    the raw assets' partition backfill sensor (all stopped by default). FHIR_BULK_DIR (default
    ``.fhir-assets/bulk``), FHIR_BULK_LEVEL (system | patient | group), FHIR_BULK_GROUP_ID,
    FHIR_BULK_TYPES (default: FHIR_RESOURCE_TYPES or the catalog types the server lists),
    FHIR_BULK_LENIENT (Prefer: handling=lenient), FHIR_BULK_INTERVAL_S (default one day)."""
    from .assets.bulk import BulkExportResource, build_bulk_asset, build_bulk_job
    from .sensors import build_backfill_sensor, build_export_sensor, build_raw_backfill_sensor

    options = LandingOptions(
        validation=os.environ.get("FHIR_VALIDATION", "fast"),
        history=os.environ.get("FHIR_HISTORY", "").lower() in ("1", "true", "yes"),
    )
    bulk = BulkExportResource(
        folder=os.environ.get("FHIR_BULK_DIR", ".fhir-assets/bulk"),
        level=os.environ.get("FHIR_BULK_LEVEL", "system"),
        group_id=os.environ.get("FHIR_BULK_GROUP_ID") or None,
        types=os.environ.get("FHIR_BULK_TYPES") or os.environ.get("FHIR_RESOURCE_TYPES", ""),
        lenient=os.environ.get("FHIR_BULK_LENIENT", "").lower() in ("1", "true", "yes"),
    )
    interval = float(os.environ.get("FHIR_BULK_INTERVAL_S", str(24 * 3600)))
    sensors = [build_export_sensor(interval), build_backfill_sensor()]
    partitioning = build_partitioning()
    if partitioning is not None:  # the raw assets' time partitions, backfilled by sync_all
        raw_keys = [
            dg.AssetKey(["fhir_raw", spec.table])
            for spec in select(os.environ.get("FHIR_RESOURCE_TYPES"))
        ]
        sensors.append(build_raw_backfill_sensor(raw_keys, partitioning.partitions_def()))
    return dg.Definitions(
        assets=[build_bulk_asset(options)],
        jobs=[build_bulk_job()],
        sensors=sensors,
        resources={"bulk": bulk},
    )


defs = dg.Definitions.merge(build_definitions(), build_bulk_definitions())
