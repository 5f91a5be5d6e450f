"""The ``fhir_io`` IO manager loads our raw tables into users' assets; a partitioned downstream
asset gets exactly its ``last_updated`` window (``partition_expr``), without running the raw
asset (it lands by itself and hands the IO manager nothing)."""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from fhir_assets.assets.raw import build_raw_asset
from fhir_assets.catalog import BY_TYPE
from fhir_assets.partitions import Partitioning
from fhir_assets.resources import FhirServerResource
from fhir_assets.warehouse.io_managers import IO_MANAGER_KEY, build_io_manager
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings, open_warehouse

from .helpers import SERVER, lines, patient

PARTITIONING = Partitioning(start=datetime(2026, 3, 1, tzinfo=UTC))


def test_a_downstream_partition_loads_its_window_only(tmp_path: Path) -> None:
    settings = WarehouseSettings(duckdb=DuckDBSettings(path=str(tmp_path / "w.duckdb")))
    with open_warehouse(settings) as warehouse:
        entries = lines(
            patient("a", "1", "2026-03-02T08:00:00Z"),
            patient("b", "1", "2026-03-02T23:59:59Z"),
            patient("c", "1", "2026-03-03T00:00:00Z"),
        )
        land(warehouse, "Patient", entries, Provenance.now(SERVER, "seed"))
    raw = build_raw_asset(BY_TYPE["Patient"], PARTITIONING, io_manager_key=IO_MANAGER_KEY)
    seen: dict[str, list[str]] = {}

    @dg.asset(
        partitions_def=PARTITIONING.partitions_def(),
        ins={"patient": dg.AssetIn(key=["fhir_raw", "patient"])},
    )
    def patient_ids(context: dg.AssetExecutionContext, patient: pd.DataFrame) -> None:
        seen[context.partition_key] = sorted(patient["id"])

    for day in ("2026-03-02", "2026-03-03", "2026-03-04"):
        result = dg.materialize(
            [raw, patient_ids],
            selection=[patient_ids],
            partition_key=day,
            resources={
                IO_MANAGER_KEY: build_io_manager(settings),
                # the raw asset is not run (not selected): its resources are never used
                "fhir": FhirServerResource(base_url="http://127.0.0.1:9/fhir"),
                "landing": DuckDBWarehouseResource(database=settings.duckdb.path),
            },
        )
        assert result.success
    assert seen == {"2026-03-02": ["a", "b"], "2026-03-03": ["c"], "2026-03-04": []}
