"""The raw assets land through the landing path: counts match the server, twice is a no-op,
and the asset checks pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fhir_assets.assets.checks import build_reference_checks
from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.catalog import select
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

from .helpers import current

CATALOG = select("Patient,Observation,Practitioner")


def materialize(sandbox: Sandbox, landing: Any) -> dg.ExecuteInProcessResult:
    client = sandbox.client
    fhir = FhirServerResource(
        base_url=sandbox.base_url,
        client_id=client.client_id,
        private_key_path=str(client.private_key_path),
        scopes=client.scopes,
    )
    return dg.materialize(
        [*build_raw_assets(CATALOG), *build_reference_checks(CATALOG)],
        resources={"fhir": fhir, "landing": landing},
        instance=dg.DagsterInstance.ephemeral(),
    )


def metadata(result: dg.ExecuteInProcessResult, table: str) -> dict[str, Any]:
    [event] = [
        e for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["fhir_raw", table])
    ]  # fmt: skip
    materialization = event.materialization
    return {k: v.value for k, v in materialization.metadata.items()}


@pytest.mark.slow
def test_raw_assets_land_every_resource_once_and_twice_is_a_no_op(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    landing = DuckDBWarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    server = sandbox.counts([spec.resource_type for spec in CATALOG])

    first = materialize(sandbox, landing)
    with landing.open_warehouse() as warehouse:
        tables = {spec.table: current(warehouse, spec.table) for spec in CATALOG}
    second = materialize(sandbox, landing)

    for spec in CATALOG:
        n = server[spec.resource_type]
        assert len(tables[spec.table]) == n > 0
        assert metadata(first, spec.table)["landed"] == n
        assert metadata(first, spec.table)["source_count"] == n
        assert metadata(second, spec.table)["unchanged"] == n
        assert metadata(second, spec.table)["landed"] == 0
    with landing.open_warehouse() as warehouse:
        assert {spec.table: current(warehouse, spec.table) for spec in CATALOG} == tables
    for result in (first, second):
        checks = result.get_asset_check_evaluations()
        assert len(checks) == 4 * 3 + 1
        assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
