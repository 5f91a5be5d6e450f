"""The raw-asset backfill sensor on a real (ephemeral) Dagster instance: missing partitions of
any raw asset become one run per contiguous range, not asked again before ``retry_s``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from fhir_assets.sensors import build_raw_backfill_sensor, ranges

PATIENT = dg.AssetKey(["fhir_raw", "patient"])
OBSERVATION = dg.AssetKey(["fhir_raw", "observation"])


def test_ranges_are_contiguous_runs_in_partition_order() -> None:
    ordered = ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert ranges({"d5", "d2", "d1", "d6", "d4"}, ordered) == [("d1", "d2"), ("d4", "d6")]
    assert ranges(set(), ordered) == []


def test_missing_raw_partitions_are_backfilled_by_range() -> None:
    start = (datetime.now(UTC) - timedelta(days=6)).strftime("%Y-%m-%d")
    daily = dg.DailyPartitionsDefinition(start_date=start)
    instance = dg.DagsterInstance.ephemeral()
    keys = daily.get_partition_keys()
    assert len(keys) == 6
    for n, key in enumerate(keys):
        instance.report_runless_asset_event(dg.AssetMaterialization(PATIENT, partition=key))
        if n not in (1, 2, 4):  # an outage left three days of Observation unsynced
            instance.report_runless_asset_event(dg.AssetMaterialization(OBSERVATION, partition=key))
    sensor = build_raw_backfill_sensor([PATIENT, OBSERVATION], daily)

    first = sensor(dg.build_sensor_context(instance=instance))
    again = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))

    spans = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in first.run_requests
    ]
    assert spans == [(keys[1], keys[2]), (keys[4], keys[4])]
    assert again.run_requests == [] and "no raw partitions" in str(again.skip_reason)
