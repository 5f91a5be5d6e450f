"""FHIR_WAREHOUSE picks the landing resource with no code change; Snowflake stays lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fhir_assets.definitions import build_definitions, build_warehouse_resources
from fhir_assets.warehouse.resources import DuckDBWarehouseResource


def test_duckdb_is_the_default_and_snowflake_is_not_imported() -> None:
    code = (
        "import sys, fhir_assets.definitions as d; "
        "print(type(d.build_warehouse_resources()['landing']).__name__, "
        "'dagster_snowflake' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["DuckDBWarehouseResource", "False"]


def test_snowflake_mode_reads_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "FHIR_WAREHOUSE": "snowflake",
        "SNOWFLAKE_ACCOUNT": "acme-xy123",
        "SNOWFLAKE_USER": "loader",
        "SNOWFLAKE_PRIVATE_KEY_PATH": "/keys/loader.p8",
        "SNOWFLAKE_DATABASE": "FHIR",
        "SNOWFLAKE_ROLE": "LOADER",
    }.items():
        monkeypatch.setenv(name, value)
    landing = build_warehouse_resources()["landing"].process_config_and_initialize()
    assert type(landing).__name__ == "SnowflakeWarehouseResource"
    assert (landing.account, landing.user, landing.database) == ("acme-xy123", "loader", "FHIR")
    assert landing.private_key_path == "/keys/loader.p8" and landing.password is None


def test_unknown_warehouse_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_WAREHOUSE", "bigquery")
    with pytest.raises(ValueError, match="FHIR_WAREHOUSE"):
        build_warehouse_resources()


def test_definitions_have_a_check_per_raw_asset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_RESOURCE_TYPES", "Patient,Observation")
    monkeypatch.delenv("FHIR_WAREHOUSE", raising=False)
    defs = build_definitions()
    assert isinstance(defs.resources["landing"], DuckDBWarehouseResource)
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"source_count", "patient_references"} <= checks
