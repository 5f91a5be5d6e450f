"""Raw-asset backfills through Dagster's declarative automation, on a real (ephemeral) instance:
missing or failed complete partitions are requested, never one a queued or running run targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.catalog import select
from fhir_assets.partitions import Partitioning
from fhir_assets.resources import FhirServerResource
from fhir_assets.sensors import build_raw_backfill_sensor
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

PATIENT = dg.AssetKey(["fhir_raw", "patient"])
OBSERVATION = dg.AssetKey(["fhir_raw", "observation"])
DAYS = 6
RESOURCES = {  # never used: the runs here are only planned
    "fhir": FhirServerResource(base_url="http://127.0.0.1:9/fhir"),
    "landing": DuckDBWarehouseResource(database="unused.duckdb"),
}


def raw_assets() -> list[dg.AssetsDefinition]:
    start = (datetime.now(UTC) - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0)
    return build_raw_assets(select("Patient,Observation"), Partitioning(start=start))


def requested(result: dg.EvaluateAutomationConditionsResult, key: dg.AssetKey) -> list[str]:
    return sorted(result.get_requested_partitions(key))


def test_missing_complete_partitions_are_requested_once_materialized_are_not() -> None:
    assets = raw_assets()
    instance = dg.DagsterInstance.ephemeral()
    keys = assets[0].partitions_def.get_partition_keys()  # type: ignore[union-attr]
    assert len(keys) == DAYS + 1  # end_offset=1: today's, still running, is shown too
    for n, key in enumerate(keys[:DAYS]):
        instance.report_runless_asset_event(dg.AssetMaterialization(PATIENT, partition=key))
        if n not in (1, 2, 4):  # an outage left three days of Observation unsynced
            instance.report_runless_asset_event(dg.AssetMaterialization(OBSERVATION, partition=key))

    defs = dg.Definitions(assets=assets, resources=RESOURCES)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)

    assert requested(result, PATIENT) == []
    assert requested(result, OBSERVATION) == [keys[1], keys[2], keys[4]]  # never today's


def test_partitions_of_an_in_progress_run_are_not_requested_again() -> None:
    assets = raw_assets()
    instance = dg.DagsterInstance.ephemeral()
    keys = assets[0].partitions_def.get_partition_keys()  # type: ignore[union-attr]
    job = dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job("sync_all", selection=[PATIENT, OBSERVATION])],
        resources=RESOURCES,
    ).resolve_job_def("sync_all")
    # a single-run backfill of the first four days, still running
    instance.create_run_for_job(
        job,
        status=dg.DagsterRunStatus.STARTED,
        asset_selection={PATIENT, OBSERVATION},
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[3],
        },
    )

    defs = dg.Definitions(assets=assets, resources=RESOURCES)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)

    for key in (PATIENT, OBSERVATION):
        assert requested(result, key) == [keys[4], keys[5]]


def test_the_sensor_targets_the_raw_assets_and_emits_backfills() -> None:
    sensor = build_raw_backfill_sensor([PATIENT, OBSERVATION])
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.emit_backfills
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    defs = dg.Definitions(assets=raw_assets(), sensors=[sensor], resources=RESOURCES)
    assert defs.resolve_sensor_def("fhir_raw_backfill_sensor") is sensor
