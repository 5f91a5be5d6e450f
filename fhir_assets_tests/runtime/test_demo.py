"""The demo fills what the UI shows: every partition of every raw asset, views, checks passed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from fhir_assets.catalog import select
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import demo_environment, run_demo
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings

CATALOG = select("Patient,Observation,Encounter")
WRITEBACK = [
    dg.AssetKey(["fhir_writeback", "patient_abnormal_count"]),
    dg.AssetKey(["fhir_writeback", "abnormal_count_observation"]),
]


def test_demo_environment_starts_daily_partitions_this_month() -> None:
    environ = demo_environment(date(2026, 12, 9))
    assert environ["FHIR_SYNC_START"] == "2026-12-01"
    assert environ["FHIR_PARTITIONS"] == "daily"


def test_demo_materializes_every_partition_the_views_and_passes_checks(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    warehouse = WarehouseSettings(duckdb=DuckDBSettings(path=str(tmp_path / "demo.duckdb")))
    with dg.DagsterInstance.ephemeral() as instance:
        # the demo's "today" is one of these two (a run may cross midnight UTC)
        first_day = datetime.now(UTC).date()
        counts = run_demo(sandbox, warehouse, CATALOG, instance=instance)
        last_day = datetime.now(UTC).date()
        assert all(c.server == c.warehouse > 0 for c in counts)
        start = date.fromisoformat(demo_environment()["FHIR_SYNC_START"])
        for spec in CATALOG:
            key = dg.AssetKey(["fhir_raw", spec.table])
            # through today's (end_offset=1)
            days = {(day - start).days + 1 for day in (first_day, last_day)}
            assert len(instance.get_materialized_partitions(key)) in days
        views = [
            key
            for key in instance.get_asset_keys()
            if key.path[0] == "fhir" and instance.get_latest_materialization_event(key)
        ]
        assert views, "no view was materialized"
        runs = instance.get_runs()
        # only jobs the code location defines (no ad-hoc demo job in the UI's run history)
        assert {run.job_name for run in runs} == {"sync_all", "__ASSET_JOB"}
        # the write-back example is materialized too, as a dry run: nothing written
        for key in WRITEBACK:
            event = instance.get_latest_materialization_event(key)
            assert event is not None, key
        observation = instance.get_latest_materialization_event(WRITEBACK[1])
        metadata = observation.asset_materialization.metadata  # type: ignore[union-attr]
        assert metadata["dry_run"].value is True
        # today's partition is marked partial: the sandbox's data may still change today
        patients = instance.get_materialized_partitions(dg.AssetKey(["fhir_raw", "patient"]))
        today = max(patients)
        assert today in {first_day.isoformat(), last_day.isoformat()}
        patient = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["fhir_raw", "patient"]), asset_partitions=[today]
            ),
            limit=1,
        ).records[0]
        assert patient.asset_materialization.metadata["partial"].value is True  # type: ignore[union-attr]
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        evaluations = [
            record.dagster_event.event_specific_data
            for run in runs
            for record in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        assert len(evaluations) >= 4 * len(CATALOG)
        assert all(e.passed for e in evaluations), [e.check_name for e in evaluations]
