"""Views refresh themselves: raw partitions backfilled through Dagster (sandbox server, real
DuckDB, a real instance) lead the views' sensor, running by default, to rebuild the view, which
shows as stale until then; the second build is incremental."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from fhir_assets.assets.defs import build_defs
from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.assets.views import build_view_assets, build_view_sensor
from fhir_assets.catalog import select
from fhir_assets.partitions import Partitioning
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.settings import Settings
from fhir_assets.views.library import load_views
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

from ..sync.test_partitioned_assets import data_day

VIEW = dg.AssetKey(["fhir", "patient"])
RAW = dg.AssetKey(["fhir_raw", "patient"])


def requested(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: Any) -> Any:
    """One tick of the views' sensor: its target's conditions, evaluated as the daemon does."""
    sensor = defs.resolve_sensor_def("fhir_views_refresh_sensor")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # nobody turns it on
    graph = defs.resolve_asset_graph()
    assert sensor.asset_selection.resolve(graph) == {VIEW}
    return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)


def stale(defs: dg.Definitions, instance: dg.DagsterInstance) -> StaleStatus:
    """The status the UI shows (the stale-status resolver behind its "stale" badge). Dagster
    computes none for an asset downstream of a time-partitioned one (``data_version.py``: an
    AllPartitionMapping from time windows is skipped), so partitioned, it is always FRESH and
    the pending rebuild shows in the view's automation evaluation instead."""
    graph = defs.resolve_asset_graph()
    return CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance)).get_status(
        VIEW
    )


@pytest.fixture(params=["daily", "none"])
def defs(request: pytest.FixtureRequest, sandbox: Sandbox, tmp_path: Path) -> dg.Definitions:
    day = data_day(sandbox)
    partitioning = Partitioning(start=day - timedelta(days=2), lag=timedelta(0))
    fhir = FhirServerResource(
        base_url=sandbox.base_url,
        client_id=sandbox.client.client_id,
        private_key_path=str(sandbox.client.private_key_path),
    )
    return dg.Definitions(
        assets=[
            *build_raw_assets(
                select("Patient"), partitioning if request.param == "daily" else None
            ),
            *build_view_assets(load_views(None, {"Patient"})),
        ],
        sensors=[build_view_sensor()],
        resources={
            "fhir": fhir,
            "landing": DuckDBWarehouseResource(database=str(tmp_path / "w.duckdb")),
        },
    )


def backfill(defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[str]) -> None:
    job = defs.resolve_implicit_global_asset_job_def()
    if not job.partitions_def:
        keys = [None]  # type: ignore[list-item]  # unpartitioned: one run of the whole history
    for key in keys:
        result = job.execute_in_process(instance=instance, partition_key=key, asset_selection=[RAW])
        assert result.success


def run_requested(defs: dg.Definitions, instance: dg.DagsterInstance, result: Any) -> Any:
    assert result.get_num_requested(VIEW) == 1
    job = defs.resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(instance=instance, asset_selection=[VIEW])
    assert run.success
    return run.asset_materializations_for_node("fhir__patient")[0].metadata


def test_a_raw_backfill_rebuilds_the_view_by_default(
    defs: dg.Definitions, sandbox: Sandbox, tmp_path: Path
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    day = data_day(sandbox)
    days = [(day - timedelta(days=n)).strftime("%Y-%m-%d") for n in (2, 1, 0)]
    start = requested(defs, instance, None)  # the sensor runs from the moment the code loads
    assert start.get_num_requested(VIEW) == 0
    backfill(defs, instance, days)

    first = requested(defs, instance, start.cursor)
    metadata = run_requested(defs, instance, first)
    patients = sandbox.counts(["Patient"])["Patient"]
    assert metadata["rows"].value == patients
    assert metadata["build"].value == "full"
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM fhir.patient").fetchone() == (patients,)

    quiet = requested(defs, instance, first.cursor)
    assert quiet.get_num_requested(VIEW) == 0  # nothing new landed
    assert stale(defs, instance) == StaleStatus.FRESH

    backfill(defs, instance, days[-1:])  # a re-sync of the last day
    partitioned = defs.resolve_implicit_global_asset_job_def().partitions_def is not None
    if not partitioned:
        assert stale(defs, instance) == StaleStatus.STALE  # the UI shows the view stale
    again = run_requested(defs, instance, requested(defs, instance, quiet.cursor))
    assert again["build"].value == "incremental"
    assert again["rows"].value == patients
    assert stale(defs, instance) == StaleStatus.FRESH


def test_the_code_location_runs_the_views_sensor_by_default() -> None:
    defs = build_defs(Settings.from_environ({"FHIR_RESOURCE_TYPES": "Patient"}))
    sensor = defs.resolve_sensor_def("fhir_views_refresh_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    assert VIEW in sensor.asset_selection.resolve(graph)  # type: ignore[attr-defined]
    assert graph.get(VIEW).automation_condition is not None


def test_column_descriptions_appear_in_the_column_schema(tmp_path: Path) -> None:
    from fhir_assets.views import parse_view
    from fhir_assets.warehouse.landing import land
    from fhir_assets.warehouse.protocol import Provenance

    view = parse_view(
        {
            "name": "ids",
            "resource": "Patient",
            "select": [{"column": [{"name": "id", "path": "id", "description": "Patient.id"}]}],
        }
    )
    landing = DuckDBWarehouseResource(database=str(tmp_path / "w.duckdb"))
    with landing.open_warehouse() as warehouse:
        line = ("p.ndjson", 1, b'{"resourceType": "Patient", "id": "p1"}')
        land(warehouse, "Patient", [line], Provenance.now("https://x.example/fhir", "s"))
    result = dg.materialize(build_view_assets([view]), resources={"landing": landing})
    metadata = result.asset_materializations_for_node("fhir__ids")[0].metadata
    columns = {c.name: c.description for c in metadata["dagster/column_schema"].value.columns}
    assert columns == {"id": "Patient.id", "_source_server": None, "_resource_id": None}
