"""The warehouse seam (``warehouse/kinds.py``): a kind is its modules plus one registry line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fhir_assets.warehouse import kind_duckdb, kinds
from fhir_assets.warehouse.io_managers import build_io_manager
from fhir_assets.warehouse.kinds import KINDS, warehouse_kind
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings, open_warehouse

from .helpers import SERVER, at, lines, patient

# A third kind for the test: DuckDB's parts under another name (what a new kind module holds).
KIND = dataclasses.replace(kind_duckdb.KIND, name="duckdb_copy")


def test_every_registered_kind_names_itself_and_its_sql_dialect() -> None:
    assert sorted(KINDS) == ["duckdb", "snowflake"]
    for name in KINDS:
        kind = warehouse_kind(name)
        assert (kind.name, kind.dialect.name) == (name, name)
    assert warehouse_kind("duckdb").one_writer and not warehouse_kind("snowflake").one_writer


def test_an_unknown_kind_is_refused_naming_the_kinds() -> None:
    with pytest.raises(ValueError, match="must be 'duckdb' or 'snowflake', not 'oracle'"):
        WarehouseSettings(kind="oracle")


def test_one_registry_line_adds_a_kind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(kinds.KINDS, "duckdb_copy", __name__)
    settings = WarehouseSettings("duckdb_copy", duckdb=DuckDBSettings(str(tmp_path / "w.duckdb")))

    with open_warehouse(settings) as warehouse:
        result = land(warehouse, "Patient", lines(patient("p1", "1", "2025-01-01T00:00:00Z")),
                      Provenance(SERVER, "s", at(1)))  # fmt: skip
    assert result.landed == 1
    assert type(build_io_manager(settings)).__name__ == "DuckDBPandasIOManager"
