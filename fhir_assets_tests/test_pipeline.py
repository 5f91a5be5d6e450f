"""The walking skeleton end to end: sandbox -> raw assets -> DuckDB, counts equal the server's."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.catalog import CATALOG, select
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import format_counts, run_demo, warehouse_counts
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings


def duckdb_at(path: Path) -> WarehouseSettings:
    return WarehouseSettings(duckdb=DuckDBSettings(path=str(path)))


def materialize(sandbox: Sandbox, path: Path, types: str) -> dg.ExecuteInProcessResult:
    env = sandbox.environment()
    fhir = FhirServerResource(
        base_url=env["FHIR_BASE_URL"],
        client_id=env["FHIR_CLIENT_ID"],
        private_key_path=env["FHIR_PRIVATE_KEY_PATH"],
        page_size=100,
    )
    return dg.materialize(
        build_raw_assets(select(types)),
        resources={"fhir": fhir, "landing": DuckDBWarehouseResource(database=str(path))},
    )


def test_raw_assets_land_exactly_what_the_server_holds(sandbox: Sandbox, tmp_path: Path) -> None:
    catalog = select("Patient,Observation,Claim")
    path = tmp_path / "wh" / "fhir.duckdb"
    result = materialize(sandbox, path, "Patient,Observation,Claim")
    assert result.success
    expected = sandbox.counts([s.resource_type for s in catalog])
    assert warehouse_counts(duckdb_at(path), catalog) == expected
    assert all(n > 0 for n in expected.values())
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(
            "select count(*), count(distinct id), min(resource::json->>'resourceType'),"
            " max(resource::json->>'resourceType'), bool_or(last_updated is null)"
            " from fhir_raw.observation"
        ).fetchone()
    assert row == (
        expected["Observation"],
        expected["Observation"],
        "Observation",
        "Observation",
        False,
    )
    metadata = result.asset_materializations_for_node("fhir_raw__observation")[0].metadata
    assert metadata["resources"].value == expected["Observation"]
    assert metadata["pages"].value == -(-expected["Observation"] // 100)


def test_materializing_twice_gives_the_same_table(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "fhir.duckdb"
    query = "select id, version_id, resource from fhir_raw.patient order by id"
    snapshots = []
    for _ in range(2):
        assert materialize(sandbox, path, "Patient").success
        with duckdb.connect(str(path), read_only=True) as con:
            snapshots.append(con.execute(query).fetchall())
    assert snapshots[0] == snapshots[1]
    assert len(snapshots[0]) == sandbox.counts(["Patient"])["Patient"]


def test_demo_lands_every_catalog_type_with_equal_counts(sandbox: Sandbox, tmp_path: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        counts = run_demo(sandbox, duckdb_at(tmp_path / "demo.duckdb"), instance=instance)
    assert [c.resource_type for c in counts] == [s.resource_type for s in CATALOG]
    assert all(c.server == c.warehouse for c in counts), format_counts(counts)
    assert sum(c.server for c in counts) > 3000
    assert "MISMATCH" not in format_counts(counts)
