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
"""

from __future__ import annotations

import os

import dagster as dg

from .assets.raw import build_raw_assets
from .catalog import ResourceSpec, select
from .resources import FhirServerResource
from .warehouse.duckdb import DEFAULT_PATH, build_duckdb_io_manager


def optional_env(name: str) -> dg.EnvVar | None:
    """An ``EnvVar`` when the variable is set (so Dagster resolves it at run time), else None."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_fhir_resource(catalog: tuple[ResourceSpec, ...] = ()) -> FhirServerResource:
    """The FHIR server resource, configured from ``FHIR_*`` variables (secrets as ``EnvVar``,
    so the UI shows the variable's name, never its value)."""
    return FhirServerResource(
        base_url=dg.EnvVar("FHIR_BASE_URL"),
        client_id=optional_env("FHIR_CLIENT_ID"),
        private_key_path=optional_env("FHIR_PRIVATE_KEY_PATH"),
        private_key=optional_env("FHIR_PRIVATE_KEY"),
        client_secret=optional_env("FHIR_CLIENT_SECRET"),
        auth_method=optional_env("FHIR_AUTH_METHOD"),
        scopes=optional_env("FHIR_SCOPES"),
        resource_types=[spec.resource_type for spec in catalog],
        token_url=optional_env("FHIR_TOKEN_URL"),
        jku=optional_env("FHIR_JKU"),
        token_dir=optional_env("FHIR_TOKEN_DIR"),
        token_key=optional_env("FHIR_TOKEN_KEY"),
    )


def build_definitions() -> dg.Definitions:
    """Assets for the selected catalog entries, with the FHIR and warehouse resources."""
    catalog = select(os.environ.get("FHIR_RESOURCE_TYPES"))
    raw_assets = build_raw_assets(catalog)
    return dg.Definitions(
        assets=raw_assets,
        jobs=[dg.define_asset_job("sync_all", selection=dg.AssetSelection.groups("fhir_raw"))],
        resources={
            "fhir": build_fhir_resource(catalog),
            "warehouse": build_duckdb_io_manager(os.environ.get("FHIR_DUCKDB_PATH", DEFAULT_PATH)),
        },
    )


defs = build_definitions()
