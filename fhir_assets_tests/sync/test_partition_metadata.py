"""A partition range landed in one run (a single-run backfill) records each partition's own
window and counts, read back from the table; the run-wide figures are named run_* and, with the
table's, carried by the newest partition's event only (the asset's latest materialization)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from fhir_assets.fhir.window import EPOCH, Window
from fhir_assets.partitions import Partitioning
from fhir_assets.sandbox import Sandbox

from .test_partitioned_assets import data_day, materialize


def day_key(day: datetime) -> str:
    return day.strftime("%Y-%m-%d")


def test_a_range_run_records_each_partitions_own_window_and_counts(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    day = data_day(sandbox)
    first, last = day - timedelta(days=2), day
    partitioning = Partitioning(start=first, lag=timedelta(0))
    path = tmp_path / "warehouse.duckdb"
    tags = {
        "dagster/asset_partition_range_start": day_key(first),
        "dagster/asset_partition_range_end": day_key(last),
    }
    before = datetime.now(UTC)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(sandbox, path, partitioning, tags=tags, instance=instance)
        latest = instance.get_latest_materialization_event(dg.AssetKey(["fhir_raw", "encounter"]))
    after = datetime.now(UTC)  # a day that ended between the two may be either
    assert result.success
    events = result.asset_materializations_for_node("fhir_raw__encounter")
    by_key = {e.partition: {k: v.value for k, v in e.metadata.items()} for e in events}
    assert sorted(by_key) == [day_key(first + timedelta(days=n)) for n in range(3)]
    with duckdb.connect(str(path), read_only=True) as con:
        [(total,)] = con.execute("select count(*) from fhir_raw.encounter").fetchall()
    for key, metadata in by_key.items():
        start = datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)
        end = min(start + timedelta(days=1), after)
        expected = Window(EPOCH if start == first else start, end)
        window = metadata["window"]
        # its own window: the first folds in the history, the last is cut at now (lag 0)
        assert window.split(", ")[0] == str(expected).split(", ")[0], (key, window)
        if start + timedelta(days=1) <= before:  # complete before the run began
            assert window == str(expected) and metadata["partial"] is False
        elif start + timedelta(days=1) > after:  # still running when it ended
            assert metadata["partial"] is True
        # no figure of the run under a partition's own name (requests, timings, counts)
        assert {"fetched", "pages", "seen", "landed", "duration_s"}.isdisjoint(metadata)
        assert metadata["source_server"] == sandbox.base_url.rstrip("/")
        if key != day_key(last):  # an older partition: its own figures only, not the run's
            assert not [k for k in metadata if k.startswith(("run_", "dagster/"))], key
    # the range's figures, under their own names, and the table's: on the newest partition
    newest = by_key[day_key(last)]
    assert newest["run_resources"] == total and newest["run_partitions"] == 3
    assert newest["run_window"].startswith("[1970-01-01T00:00:00.000Z, ")
    assert {"run_fetched", "run_pages", "run_seen", "run_landed"} <= set(newest)
    assert newest["dagster/row_count"] == total and "dagster/column_schema" in newest
    # ... which is the event the asset's page shows as its latest materialization
    assert latest is not None and latest.asset_materialization is not None
    assert latest.asset_materialization.partition == day_key(last)
    assert latest.asset_materialization.metadata["run_partitions"].value == 3
    # the seeded data was all written on one day: that partition holds every row, the others none
    assert {k: m["resources"] for k, m in by_key.items()} == {
        day_key(first): 0,
        day_key(first + timedelta(days=1)): 0,
        day_key(last): total,
    }
    assert sum(m["written_by_run"] for m in by_key.values()) == total


def test_a_single_partition_keeps_its_figures_under_their_usual_names(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    day = data_day(sandbox)
    partitioning = Partitioning(start=day, lag=timedelta(0))
    result = materialize(sandbox, tmp_path / "w.duckdb", partitioning, partition_key=day_key(day))
    [event] = result.asset_materializations_for_node("fhir_raw__patient")
    metadata = {k: v.value for k, v in event.metadata.items()}
    assert metadata["resources"] == sandbox.counts(["Patient"])["Patient"]
    assert "run_resources" not in metadata and metadata["window"].startswith("[1970-01-01")
