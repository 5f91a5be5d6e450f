"""The Dagster Definitions: the only module that reads the deployment environment.

Environment:
    FHIR_BASE_URL            FHIR base URL (required to run assets)
    FHIR_CLIENT_ID           SMART Backend Services client id
    FHIR_PRIVATE_KEY_PATH    its private key (PEM or JWK file)
    FHIR_SCOPES              scopes to request (default ``system/*.read``)
    FHIR_RESOURCE_TYPES      comma-separated subset of the catalog (default: all)
    FHIR_DUCKDB_PATH         DuckDB file (default ``.fhir-assets/warehouse.duckdb``)
    FHIR_VIEWS_DIR           folder of extra SQL on FHIR ViewDefinitions (``*.json``)
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from .assets.raw import build_raw_assets
from .assets.views import build_view_assets
from .catalog import select
from .resources import FhirServerResource
from .views.library import load_views
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


def build_definitions() -> dg.Definitions:
    """Assets for the selected catalog entries, with the FHIR and warehouse resources."""
    catalog = select(os.environ.get("FHIR_RESOURCE_TYPES"))
    raw_assets = build_raw_assets(catalog)
    duckdb_path = os.environ.get("FHIR_DUCKDB_PATH", DEFAULT_PATH)
    views = load_views(os.environ.get("FHIR_VIEWS_DIR"), {s.resource_type for s in catalog})
    return dg.Definitions(
        assets=[*raw_assets, *build_view_assets(views)],
        jobs=[dg.define_asset_job("sync_all", selection=dg.AssetSelection.groups("fhir_raw"))],
        resources={
            "fhir": build_fhir_resource(),
            "warehouse": build_duckdb_io_manager(duckdb_path),
            "duckdb": DuckDBResource(database=str(duckdb_path)),
        },
    )


defs = build_definitions()
