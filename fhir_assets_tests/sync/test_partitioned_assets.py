"""Partitioned raw assets against the sandbox: idempotent partitions, ranges, the schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import pytest

from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.catalog import select
from fhir_assets.fhir.window import EPOCH, Window
from fhir_assets.partitions import Partitioning
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.schedules import build_sync_schedule
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

TYPES = "Patient,Encounter"


def data_day(sandbox: Sandbox) -> datetime:
    """The UTC day the seeded resources were written (the cache build)."""
    with sandbox.fhir_client() as client:
        patient = next(client.search("Patient", {"_count": 1}))
    stamp = datetime.fromisoformat(patient["meta"]["lastUpdated"].replace("Z", "+00:00"))
    return stamp.replace(hour=0, minute=0, second=0, microsecond=0)


def materialize(sandbox: Sandbox, path: Path, partitioning: Partitioning, **kwargs: object):
    fhir = FhirServerResource(
        base_url=sandbox.base_url,
        client_id=sandbox.client.client_id,
        private_key_path=str(sandbox.client.private_key_path),
        page_size=37,
    )
    return dg.materialize(
        build_raw_assets(select(TYPES), partitioning),
        resources={"fhir": fhir, "landing": DuckDBWarehouseResource(database=str(path))},
        **kwargs,
    )


def table(path: Path, name: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        sql = f"select id, version_id, last_updated, resource from fhir_raw.{name} order by id"  # noqa: S608
        return con.execute(sql).fetchall()


def test_materializing_a_partition_twice_gives_the_same_table(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    day = data_day(sandbox)
    partitioning = Partitioning(start=day, lag=timedelta(0))
    path = tmp_path / "warehouse.duckdb"
    key = day.strftime("%Y-%m-%d")
    first = materialize(sandbox, path, partitioning, partition_key=key)
    landed = table(path, "patient"), table(path, "encounter")
    second = materialize(sandbox, path, partitioning, partition_key=key)
    assert first.success and second.success
    assert (table(path, "patient"), table(path, "encounter")) == landed
    counts = sandbox.counts(["Patient", "Encounter"])
    assert [len(t) for t in landed] == [counts["Patient"], counts["Encounter"]]
    metadata = second.asset_materializations_for_node("fhir_raw__patient")[0].metadata
    assert metadata["resources"].value == counts["Patient"]
    assert metadata["server_profile"].value == "sekmet"
    assert metadata["pages"].value >= counts["Patient"] // 37
    assert {"retries", "throttled_s", "window", "duration_s", "resources_per_s"} <= set(metadata)


def test_a_partition_range_runs_as_one_run_and_matches(sandbox: Sandbox, tmp_path: Path) -> None:
    day = data_day(sandbox)
    partitioning = Partitioning(start=day - timedelta(days=2), lag=timedelta(0))
    path = tmp_path / "warehouse.duckdb"
    tags = {
        "dagster/asset_partition_range_start": (day - timedelta(days=2)).strftime("%Y-%m-%d"),
        "dagster/asset_partition_range_end": day.strftime("%Y-%m-%d"),
    }
    result = materialize(sandbox, path, partitioning, tags=tags)
    assert result.success
    assert len(table(path, "encounter")) == sandbox.counts(["Encounter"])["Encounter"]
    window = (
        result.asset_materializations_for_node("fhir_raw__encounter")[0].metadata["window"].value
    )
    assert window.startswith("[1970-01-01T00:00:00.000Z, ")  # history folds into the first day


def test_partition_window_cuts_at_the_lag_and_folds_history_into_the_first() -> None:
    now = datetime(2026, 3, 5, 12, 0, 0, 123456, tzinfo=UTC)
    partitioning = Partitioning(start=datetime(2026, 3, 1, tzinfo=UTC), now=lambda: now)
    first = partitioning.window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert first == Window(EPOCH, datetime(2026, 3, 2, tzinfo=UTC))
    today = partitioning.window(datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC))
    assert today.end == datetime(2026, 3, 5, 11, 50, 0, 123000, tzinfo=UTC)
    assert len(partitioning.pieces(Window(EPOCH, datetime(2026, 3, 3, tzinfo=UTC)))) == 3
    late = Partitioning(
        start=partitioning.start, now=lambda: datetime(2026, 3, 5, 0, 5, tzinfo=UTC)
    )
    with pytest.raises(dg.Failure, match="has not started"):
        late.window(datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC))


@pytest.mark.parametrize(
    ("hourly", "at", "expected"),
    [
        (False, datetime(2026, 3, 5, 0, 15, tzinfo=UTC), "2026-03-04"),
        (False, datetime(2026, 3, 5, 0, 5, tzinfo=UTC), "2026-03-03"),  # 3-04 not lag-old yet
        (True, datetime(2026, 3, 5, 7, 15, tzinfo=UTC), "2026-03-05-06:00"),
        (False, datetime(2026, 3, 1, 0, 15, tzinfo=UTC), None),
    ],
)
def test_schedule_requests_the_newest_complete_partition(
    hourly: bool, at: datetime, expected: str | None
) -> None:
    partitioning = Partitioning(start=datetime(2026, 3, 1, tzinfo=UTC), hourly=hourly)
    job = dg.define_asset_job("sync_all", selection=dg.AssetSelection.groups("fhir_raw"))
    schedule = build_sync_schedule(job, partitioning)
    assert schedule.cron_schedule == ("15 * * * *" if hourly else "15 0 * * *")
    defs = dg.Definitions(
        assets=build_raw_assets(select("Patient"), partitioning),
        jobs=[job],
        schedules=[schedule],
        resources={
            "fhir": FhirServerResource(base_url="http://127.0.0.1:9/fhir"),
            "landing": DuckDBWarehouseResource(database="unused.duckdb"),
        },
    )
    context = dg.build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    result = schedule.evaluate_tick(context)
    keys = [request.partition_key for request in result.run_requests or []]
    assert keys == ([expected] if expected else [])


def test_epic_profile_syncs_patient_types_per_group_member(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox()
    with sandbox.fhir_client() as client:
        patients = [p["id"] for p in client.search("Patient", {"_count": 500})]
        members = [{"entity": {"reference": f"Patient/{pid}"}} for pid in patients]
        group = {"resourceType": "Group", "type": "person", "actual": True, "member": members}
        created = client.request(
            "POST",
            "Group",
            data=orjson.dumps(group),
            headers={"Content-Type": "application/fhir+json"},
        )
    fhir = FhirServerResource(
        base_url=sandbox.base_url,
        client_id=sandbox.client.client_id,
        private_key_path=str(sandbox.client.private_key_path),
        server_profile="epic",
        patient_group=created["id"],
        requests_per_s=500,
    )
    path = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        build_raw_assets(select("Encounter,AllergyIntolerance")),
        resources={"fhir": fhir, "landing": DuckDBWarehouseResource(database=str(path))},
    )
    assert result.success
    counts = sandbox.counts(["Encounter", "AllergyIntolerance"])
    assert len(table(path, "encounter")) == counts["Encounter"]
    assert len(table(path, "allergyintolerance")) == counts["AllergyIntolerance"]
    metadata = result.asset_materializations_for_node("fhir_raw__encounter")[0].metadata
    assert metadata["server_profile"].value == "epic"
    assert metadata["windows"].value == len(patients)  # one search per patient
