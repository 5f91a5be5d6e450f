"""The Dagster Definitions: the only module that reads the deployment environment.

Environment:
    FHIR_BASE_URL            FHIR base URL (required to run assets)
    FHIR_CLIENT_ID           SMART Backend Services client id
    FHIR_PRIVATE_KEY_PATH    its private key (PEM or JWK file)
    FHIR_SCOPES              scopes to request (default ``system/*.read``)
    FHIR_RESOURCE_TYPES      comma-separated subset of the catalog (default: all)
    FHIR_DUCKDB_PATH         DuckDB file (default ``.fhir-assets/warehouse.duckdb``)
    FHIR_WRITE_SCOPES        scopes the write-back assets request (default
                             ``system/*.read system/*.write``)
    FHIR_WRITE_CONFLICT_POLICY  fail | server-wins | client-wins (default ``fail``)
    FHIR_WRITE_SERVER_VALIDATE  ``1``/``true``: also ``$validate`` on the server before writing
    FHIR_WRITE_BATCH_SIZE    resources per write-back transaction (default 100)
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from .assets.raw import build_raw_assets
from .assets.writeback import build_abnormal_count_assets
from .catalog import select
from .resources import FhirServerResource
from .warehouse.duckdb import DEFAULT_PATH, build_duckdb_io_manager


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


def build_fhir_writer_resource() -> FhirServerResource:
    """The FHIR server as the write-back assets see it: same client, write scopes."""
    return FhirServerResource(
        base_url=dg.EnvVar("FHIR_BASE_URL"),
        client_id=optional_env("FHIR_CLIENT_ID"),
        private_key_path=optional_env("FHIR_PRIVATE_KEY_PATH"),
        scopes=os.environ.get("FHIR_WRITE_SCOPES", "system/*.read system/*.write"),
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


def build_definitions() -> dg.Definitions:
    """Assets for the selected catalog entries, with the FHIR and warehouse resources."""
    catalog = select(os.environ.get("FHIR_RESOURCE_TYPES"))
    raw_assets = build_raw_assets(catalog)
    return dg.Definitions(
        assets=[*raw_assets, *build_writeback_assets()],
        jobs=[
            dg.define_asset_job("sync_all", selection=dg.AssetSelection.groups("fhir_raw")),
            # the write-back example and the raw tables it reads (when they are in the catalog)
            dg.define_asset_job(
                "writeback_example",
                selection=dg.AssetSelection.groups("fhir_writeback").upstream(),
            ),
        ],
        resources={
            "fhir": build_fhir_resource(),
            "warehouse": build_duckdb_io_manager(os.environ.get("FHIR_DUCKDB_PATH", DEFAULT_PATH)),
            "fhir_writer": build_fhir_writer_resource(),
            "duckdb": DuckDBResource(database=os.environ.get("FHIR_DUCKDB_PATH", DEFAULT_PATH)),
        },
    )


defs = build_definitions()
