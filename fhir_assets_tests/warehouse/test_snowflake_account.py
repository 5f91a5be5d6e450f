"""The landing scenario against a real Snowflake account (only with SNOWFLAKE_ACCOUNT set).

Runs in a scratch database of its own (needs CREATE DATABASE), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from fhir_assets.warehouse.resources import DuckDBWarehouseResource

from .helpers import current, quarantine
from .test_scenario import run_scenario

pytestmark = [
    pytest.mark.snowflake,
    pytest.mark.skipif(not os.environ.get("SNOWFLAKE_ACCOUNT"), reason="needs SNOWFLAKE_*"),
]


def test_scenario_gives_the_same_tables_in_snowflake_as_in_duckdb(tmp_path: Path) -> None:
    from fhir_assets.settings import load
    from fhir_assets.views.library import load_views
    from fhir_assets.views.runner import materialize
    from fhir_assets.warehouse.snowflake import SnowflakeSettings, open_snowflake

    database = f"FHIR_ASSETS_TEST_{uuid.uuid4().hex[:8].upper()}"
    settings = load(SnowflakeSettings, os.environ)  # key pair or password, role, warehouse
    [view] = [v for v in load_views(None, {"Patient"}) if v.name == "patient"]
    with open_snowflake(settings) as warehouse:
        warehouse.execute(f"CREATE DATABASE {database}")
        try:
            warehouse.execute(f"USE DATABASE {database}")
            run_scenario(warehouse)
            snowflake = (current(warehouse), quarantine(warehouse), materialize(warehouse, view))
        finally:
            warehouse.execute(f"DROP DATABASE IF EXISTS {database}")
    with DuckDBWarehouseResource(database=str(tmp_path / "w.duckdb")).open_warehouse() as duck:
        run_scenario(duck)
        assert snowflake == (current(duck), quarantine(duck), materialize(duck, view))
