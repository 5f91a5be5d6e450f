"""FHIR_WAREHOUSE picks the one warehouse resource with no code change; Snowflake stays lazy."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from fhir_assets.assets.defs import build_defs, build_warehouse_resources
from fhir_assets.fhir.errors import ConfigurationError
from fhir_assets.settings import Settings
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

SNOWFLAKE = {
    "FHIR_WAREHOUSE": "snowflake",
    "SNOWFLAKE_ACCOUNT": "acme-xy123",
    "SNOWFLAKE_USER": "loader",
    "SNOWFLAKE_PRIVATE_KEY_PATH": "/keys/loader.p8",
    "SNOWFLAKE_DATABASE": "FHIR",
    "SNOWFLAKE_ROLE": "LOADER",
}


def test_duckdb_is_the_default_and_snowflake_is_not_imported() -> None:
    code = (
        "import sys, fhir_assets.definitions as d; "
        "print(type(d.defs.resources['landing']).__name__, "
        "type(d.defs.resources['fhir_io']).__name__, "
        "any(m.startswith(('dagster_snowflake', 'snowflake.')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["DuckDBWarehouseResource", "DuckDBPandasIOManager", "False"]


def test_snowflake_mode_reads_the_standard_variables() -> None:
    resources = build_warehouse_resources(Settings.from_environ(SNOWFLAKE))
    landing = resources["landing"]
    assert type(landing).__name__ == "SnowflakeWarehouseResource"
    assert (landing.account, landing.user, landing.database) == ("acme-xy123", "loader", "FHIR")
    assert landing.private_key_path == "/keys/loader.p8" and landing.password is None
    assert type(resources["fhir_io"]).__name__ == "SnowflakePandasIOManager"


def test_snowflake_password_from_the_environment_stays_an_env_var() -> None:
    environ = SNOWFLAKE | {"SNOWFLAKE_PASSWORD": "pw-not-shown"}
    resources = build_warehouse_resources(Settings.from_environ(environ, secrets_from_env=True))
    for name in ("landing", "fhir_io"):
        assert isinstance(resources[name].password, dg.EnvVar)
        assert resources[name].password.env_var_name == "SNOWFLAKE_PASSWORD"


@pytest.mark.parametrize(
    ("name", "value"),
    [("FHIR_WAREHOUSE", "bigquery"), ("FHIR_SYNC_WORKERS", "many"), ("SNOWFLAKE_PORT", "x")],
)
def test_a_bad_value_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environ({name: value})


def test_definitions_have_a_check_per_raw_asset() -> None:
    defs = build_defs(Settings.from_environ({"FHIR_RESOURCE_TYPES": "Patient,Observation"}))
    assert isinstance(defs.resources["landing"], DuckDBWarehouseResource)
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"source_count", "patient_references"} <= checks
