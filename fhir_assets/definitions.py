"""The Dagster Definitions: the only module that reads the deployment environment.

Environment:
    FHIR_BASE_URL            FHIR base URL (required to run assets)
    FHIR_CLIENT_ID           SMART Backend Services client id
    FHIR_PRIVATE_KEY_PATH    its private key (PEM or JWK file)
    FHIR_SCOPES              scopes to request (default ``system/*.read``)
    FHIR_RESOURCE_TYPES      comma-separated subset of the catalog (default: all)
    FHIR_DUCKDB_PATH         DuckDB file (default ``.fhir-assets/warehouse.duckdb``)
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
from typing import Any

import dagster as dg

from .assets.checks import build_raw_checks
from .assets.raw import build_raw_assets
from .catalog import select
from .resources import FhirServerResource
from .warehouse.duckdb import DEFAULT_PATH, build_duckdb_io_manager
from .warehouse.landing import LandingOptions
from .warehouse.resources import DuckDBWarehouseResource


def optional_env(name: str) -> dg.EnvVar | None:
    """An ``EnvVar`` when the variable is set (so Dagster resolves it at run time), else None."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_fhir_resource() -> FhirServerResource:
    """The FHIR server resource, configured from ``FHIR_*`` variables."""
    return FhirServerResource(
        base_url=dg.EnvVar("FHIR_BASE_URL"),
        client_id=optional_env("FHIR_CLIENT_ID"),
        private_key_path=optional_env("FHIR_PRIVATE_KEY_PATH"),
        scopes=os.environ.get("FHIR_SCOPES", "system/*.read"),
    )


def build_warehouse_resources() -> dict[str, Any]:
    """``landing`` (where raw assets land) and ``warehouse`` (IO manager) for FHIR_WAREHOUSE.

    Snowflake modules are imported only in Snowflake mode: they take seconds to import.
    """
    kind = os.environ.get("FHIR_WAREHOUSE", "duckdb")
    if kind == "duckdb":
        path = os.environ.get("FHIR_DUCKDB_PATH", DEFAULT_PATH)
        return {
            "landing": DuckDBWarehouseResource(database=path),
            "warehouse": build_duckdb_io_manager(path),
        }
    if kind == "snowflake":
        from dagster_snowflake_pandas import SnowflakePandasIOManager

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
            "warehouse": SnowflakePandasIOManager(**config),
        }
    raise ValueError(f"FHIR_WAREHOUSE must be 'duckdb' or 'snowflake', not {kind!r}")


def build_definitions() -> dg.Definitions:
    """Assets for the selected catalog entries, with the FHIR and warehouse resources."""
    catalog = select(os.environ.get("FHIR_RESOURCE_TYPES"))
    options = LandingOptions(
        validation=os.environ.get("FHIR_VALIDATION", "fast"),
        history=os.environ.get("FHIR_HISTORY", "").lower() in ("1", "true", "yes"),
    )
    raw_assets = build_raw_assets(catalog, options)
    max_share = float(os.environ.get("FHIR_MAX_INVALID_SHARE", "0.01"))
    return dg.Definitions(
        assets=raw_assets,
        asset_checks=build_raw_checks(catalog, max_invalid_share=max_share),
        jobs=[dg.define_asset_job("sync_all", selection=dg.AssetSelection.groups("fhir_raw"))],
        resources={"fhir": build_fhir_resource(), **build_warehouse_resources()},
    )


defs = build_definitions()
