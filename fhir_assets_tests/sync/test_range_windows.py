"""A backfill over a partition range searches as few ``_lastUpdated`` windows as the server's counts
allow: a year of daily partitions costs about types x pages requests, counted at a proxy."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import dagster as dg

from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.catalog import select
from fhir_assets.partitions import Partitioning
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets_tests.proxy import FaultProxy
from fhir_assets_tests.sync.test_partitioned_assets import data_day, table

TYPES = "Patient,Encounter,Condition"
PAGE_SIZE = 50


def test_a_year_backfill_costs_pages_not_days(sandbox: Sandbox, tmp_path: Path) -> None:
    day = data_day(sandbox)
    first = day - timedelta(days=365)
    partitioning = Partitioning(start=first, lag=timedelta(0))
    path = tmp_path / "warehouse.duckdb"
    catalog = select(TYPES)
    types = [spec.resource_type for spec in catalog]
    counts = sandbox.counts(types)
    with FaultProxy(sandbox.base_url) as proxy:  # no faults: it only counts what reaches the server
        fhir = FhirServerResource(
            base_url=proxy.url,
            client_id=sandbox.client.client_id,
            private_key_path=str(sandbox.client.private_key_path),
            token_url=sandbox.token_url,  # an assertion's audience is the real token endpoint
            page_size=PAGE_SIZE,
        )
        result = dg.materialize(
            build_raw_assets(catalog, partitioning),
            resources={"fhir": fhir, "landing": DuckDBWarehouseResource(database=str(path))},
            tags={
                "dagster/asset_partition_range_start": first.strftime("%Y-%m-%d"),
                "dagster/asset_partition_range_end": day.strftime("%Y-%m-%d"),
            },
        )
        searches = {t: sum(f"/{t}" in p for _, p, _ in proxy.requests) for t in types}
    assert result.success
    for spec in catalog:
        assert len(table(path, spec.table)) == counts[spec.resource_type]
        pages = max(1, math.ceil(counts[spec.resource_type] / PAGE_SIZE))
        # its pages, plus the window's count check and the source count: never one per day
        assert searches[spec.resource_type] <= pages + 3, (spec.resource_type, searches)
    # Dagster records every partition of the range (single-run backfill policy)
    materialized = result.asset_materializations_for_node("fhir_raw__patient")
    assert len(materialized) == 366
