"""Warehouses for landing tests: a DuckDB file in tmp_path and the fakesnow Snowflake emulator.

Tests taking ``warehouse`` run once per warehouse, so both run the same SQL semantics.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakesnow
import pytest

from fhir_assets.warehouse.protocol import Warehouse
from fhir_assets.warehouse.resources import DuckDBWarehouseResource


@pytest.fixture
def duckdb_resource(tmp_path: Path) -> DuckDBWarehouseResource:
    return DuckDBWarehouseResource(database=str(tmp_path / "wh" / "warehouse.duckdb"))


@pytest.fixture
def fake_snowflake() -> Iterator[Any]:
    """The Snowflake resource on the in-process emulator (one fresh in-memory account)."""
    from fhir_assets.warehouse.resources import SnowflakeWarehouseResource

    with fakesnow.patch():
        yield SnowflakeWarehouseResource(
            account="fake", user="fake", password="fake", database="FHIR", schema="PUBLIC"
        )


@pytest.fixture(params=["duckdb", "snowflake"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """An open landing warehouse of each kind."""
    if request.param == "duckdb":
        resource = request.getfixturevalue("duckdb_resource")
    else:
        resource = request.getfixturevalue("fake_snowflake")
    with resource.open_warehouse() as opened:
        yield opened
