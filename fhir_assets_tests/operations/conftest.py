"""Warehouses for the operation tests: a DuckDB file in tmp_path and the fakesnow emulator
(server mode, reached by the real connector), as ``WarehouseSettings``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pytest

from fhir_assets.warehouse import sql
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings, open_warehouse

from ..snowflake_emulator import apply_bootstrap, emulator_settings


@pytest.fixture(params=["duckdb", "snowflake"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseSettings]:
    duckdb = DuckDBSettings(path=str(tmp_path / "wh" / "warehouse.duckdb"))
    if request.param == "duckdb":
        yield WarehouseSettings("duckdb", duckdb=duckdb)
        return
    with emulator_settings(database="FHIR_ASSETS") as snowflake:
        apply_bootstrap(snowflake)
        yield WarehouseSettings("snowflake", duckdb=duckdb, snowflake=snowflake)


def rows(warehouse: WarehouseSettings, table: str, server: str) -> dict[str, dict[str, Any]]:
    """Current resources of ``server`` in ``fhir_raw.<table>`` by id (none: no table)."""
    with open_warehouse(warehouse, landing=False) as opened:
        if not opened.fetch(sql.table_exists(table))[0][0]:
            return {}
        found = opened.fetch(
            f"SELECT id, resource FROM {sql.qualified(table)} "  # noqa: S608 (test names)
            f"WHERE NOT deleted AND source_server = {opened.dialect.literal(server)}"
        )
    return {str(i): orjson.loads(r) if isinstance(r, str | bytes) else r for i, r in found}


def materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}
