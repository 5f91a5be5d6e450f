"""The warehouse seam (``warehouse/kinds.py``): a kind is its modules plus one registry line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fhir_assets.warehouse import kind_duckdb, kinds, sql
from fhir_assets.warehouse.io_managers import build_io_manager
from fhir_assets.warehouse.kinds import KINDS, warehouse_kind
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings, open_warehouse

from .helpers import SERVER, at, lines, patient

# A third kind for the test: DuckDB's parts under another name (what a new kind module holds).
KIND = dataclasses.replace(
    kind_duckdb.KIND,
    name="duckdb_copy",
    dialect=dataclasses.replace(sql.DUCKDB, name="duckdb_copy"),
)


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


# The SQL that differs between warehouses, past the landing: each piece asks the kind's words.
OBSERVATION = {
    "resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"},
    "meta": {"lastUpdated": "2025-01-01T00:00:00Z",
             "tag": [{"system": "urn:other", "code": "x"}, {"system": "urn:tag", "code": "y"}]},
    "interpretation": [{"coding": [{"code": "N"}]}, {"coding": [{"code": "x"}, {"code": "H"}]}],
}  # fmt: skip


def test_a_new_kind_compiles_views_keys_scores_and_tags_in_its_own_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A kind registered by one line (DuckDB's parts under another name) gets every piece of
    dialect-dependent SQL: nothing past its modules compares warehouse names."""
    from fhir_assets.deid.keyed import DeidKey, KeyedSql, pseudonym
    from fhir_assets.extraction_tombstones import tagged_sql
    from fhir_assets.views import parse_view
    from fhir_assets.views.compiler import compile_view
    from fhir_assets.writeback.example import score_sql

    monkeypatch.setitem(kinds.KINDS, "duckdb_copy", __name__)
    settings = WarehouseSettings("duckdb_copy", duckdb=DuckDBSettings(str(tmp_path / "w.duckdb")))
    with open_warehouse(settings) as warehouse:
        entries = lines(patient("p1", "1", "2025-01-01T00:00:00Z"))
        land(warehouse, "Patient", entries, Provenance(SERVER, "s", at(1)))
        land(warehouse, "Observation", lines(OBSERVATION, source="Observation.ndjson"),
             Provenance(SERVER, "s", at(1)))  # fmt: skip
        d = warehouse.dialect
        view = parse_view(
            {
                "resource": "Patient",
                "select": [
                    {
                        "column": [
                            {"name": "id", "path": "id"},
                            {"name": "ids", "path": "id", "collection": True},
                        ]
                    }
                ],
            }
        )
        query = compile_view(view, "duckdb_copy").sql  # fmt: skip
        assert warehouse.fetch(f"SELECT id FROM ({query}) v") == [("p1",)]  # noqa: S608
        key = DeidKey.from_secret("k" * 40)
        hashed_sql = KeyedSql(d).pseudonym(key, "'p1'")
        [(hashed,)] = warehouse.fetch(f"SELECT {hashed_sql}")
        assert hashed == pseudonym(key, "p1", d)
        warehouse.fetch("CREATE SCHEMA IF NOT EXISTS fhir_writeback")
        warehouse.fetch(score_sql(d, d.literal(SERVER)))
        score = "SELECT * FROM fhir_writeback.patient_abnormal_count"
        assert warehouse.fetch(score) == [("p1", 1)]
        tags = tagged_sql(d, "fhir_raw.observation", d.literal(SERVER), d.literal("urn:tag"))
        assert warehouse.fetch(tags) == [("Observation", "o1", "y")]
        create, scratch = sql.scratch_table(d, "_scratch_run")
        warehouse.fetch(f"{create} {scratch} (n INTEGER)")


def test_no_module_past_the_kinds_compares_warehouse_names() -> None:
    """The names "duckdb" and "snowflake" are registry keys (``kinds.KINDS``) and each kind's
    own name; anywhere else a comparison with them is a seam leaking."""
    import re

    package = Path(kinds.__file__).resolve().parent.parent
    leak = re.compile(
        r"""[=!]=\s*["'](duckdb|snowflake)["']|["'](duckdb|snowflake)["']\s*[:]|"""
        r"""\bin\s*[(\[{]["'](duckdb|snowflake)["']|isinstance\([^)]*(DuckDB|Snowflake)\w*Resource"""
    )
    found = [
        f"{path.relative_to(package)}:{n}: {line.strip()}"
        for path in package.rglob("*.py")
        if path != Path(kinds.__file__).resolve()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if leak.search(line)
    ]
    assert found == []
