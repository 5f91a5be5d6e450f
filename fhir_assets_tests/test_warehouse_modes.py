"""One scenario in both warehouse modes: sync -> views -> write-back dry run -> a user's
downstream pandas asset, with the checks, all from ``build_defs(settings)``.

Snowflake mode runs against fakesnow's server mode through the real snowflake-connector-python
(host, port and protocol ``http``), after ``deploy/snowflake/bootstrap.sql``; it must never
open a DuckDB file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from fhir_assets.assets.defs import build_defs
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import sandbox_settings
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings, open_warehouse
from fhir_assets.warehouse.snowflake import SnowflakeSettings

from .snowflake_emulator import apply_bootstrap, emulator_settings

WRITEBACK_OP = "fhir_writeback__abnormal_count_observation"


@pytest.fixture(params=["duckdb", "snowflake"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseSettings]:
    duckdb = DuckDBSettings(path=str(tmp_path / "wh" / "warehouse.duckdb"))
    if request.param == "duckdb":
        yield WarehouseSettings("duckdb", duckdb=duckdb)
        return
    with emulator_settings(database="FHIR_ASSETS") as snowflake:
        apply_bootstrap(snowflake)
        yield WarehouseSettings("snowflake", duckdb=duckdb, snowflake=snowflake)
    assert not Path(duckdb.path).exists()  # Snowflake mode opened no DuckDB file


@dg.asset(
    ins={
        "observation": dg.AssetIn(key=["fhir_raw", "observation"]),
        "patient": dg.AssetIn(key=["fhir", "patient"]),
    }
)
def observations_per_patient(
    observation: pd.DataFrame, patient: pd.DataFrame
) -> dg.MaterializeResult:
    """What a user writes: plain pandas over our raw table and our view."""
    live = observation[~observation["deleted"].astype(bool)]
    return dg.MaterializeResult(
        metadata={
            "observations": len(live),
            "patients": int(patient["id"].nunique()),
            "columns": ",".join(observation.columns),
        }
    )


def metadata(result: dg.ExecuteInProcessResult, *path: str) -> dict[str, Any]:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(path)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_scenario_runs_alike_in_both_warehouses(
    sandbox: Sandbox, warehouse: WarehouseSettings
) -> None:
    settings = sandbox_settings(
        sandbox,
        warehouse,
        FHIR_RESOURCE_TYPES="Patient,Observation",
        FHIR_PARTITIONS="none",
        FHIR_WRITE_SCOPES="system/*.read system/*.write",
    )
    # the FHIR operations (a cohort-partitioned asset among them) are tested in operations/
    scenario = dg.AssetSelection.all() - dg.AssetSelection.groups("fhir_operations")
    everything = dg.define_asset_job("everything", selection=scenario)
    defs = dg.Definitions.merge(
        build_defs(settings), dg.Definitions(assets=[observations_per_patient], jobs=[everything])
    )
    config = {"ops": {WRITEBACK_OP: {"config": {"dry_run": True}}}}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("everything").execute_in_process(
            instance=instance, run_config=config
        )
    assert result.success
    expected = sandbox.counts(["Patient", "Observation"])

    raw = metadata(result, "fhir_raw", "observation")
    assert raw["landed"] == expected["Observation"]
    assert raw["dagster/row_count"] == expected["Observation"]
    assert raw["dagster/table_name"].endswith("fhir_raw.observation")
    assert [c.name for c in raw["dagster/column_schema"].columns][:4] == [
        "id", "version_id", "last_updated", "resource",
    ]  # fmt: skip
    view = metadata(result, "fhir", "patient")
    assert view["rows"] == view["dagster/row_count"] == expected["Patient"]

    user = metadata(result, "observations_per_patient")
    assert (user["observations"], user["patients"]) == (
        expected["Observation"],
        expected["Patient"],
    )
    assert user["columns"].startswith("id,version_id,last_updated,resource")

    written = metadata(result, "fhir_writeback", "abnormal_count_observation")
    assert written["dry_run"] is True and written["resources"] == expected["Patient"]
    assert written["failed"] == 0

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["source_count"] and checks["id_unique"] and checks["no_future_last_updated"]

    with open_warehouse(warehouse, landing=False) as opened:
        scores = dict(opened.fetch("SELECT * FROM fhir_writeback.patient_abnormal_count"))
        observations = opened.fetch("SELECT resource FROM fhir_raw.observation WHERE NOT deleted")
        [(audited,)] = opened.fetch("SELECT COUNT(*) FROM fhir_audit.writes")
    assert len(scores) == expected["Patient"]
    assert scores == abnormal_counts(observations, scores)  # the score SQL of each warehouse
    assert audited >= 0  # the audit table exists in this warehouse (a dry run may log nothing)


def test_snowflake_key_pair_settings_reach_the_connector(tmp_path: Path) -> None:
    """Key-pair auth: the private key file and its passphrase go to the connector, no password."""
    settings = SnowflakeSettings(
        account="acme-xy123",
        user="FHIR_LOADER",
        private_key_path=str(tmp_path / "loader.p8"),
        private_key_password="not-shown",
        database="FHIR",
    )
    args = settings.connect_args()
    assert args["private_key_file"] == str(tmp_path / "loader.p8")
    assert args["private_key_file_pwd"] == "not-shown"
    assert "password" not in args
    assert "not-shown" not in repr(settings)


def abnormal_counts(rows: list[tuple[Any, ...]], patients: dict[str, int]) -> dict[str, int]:
    """The write-back example's score computed in Python from the raw Observations: how many
    of each patient's Observations have an interpretation coding in ``ABNORMAL_CODES``."""
    from fhir_assets.writeback.example import ABNORMAL_CODES

    counts = dict.fromkeys(patients, 0)
    for (text,) in rows:
        resource = json.loads(text) if isinstance(text, str) else text
        codes = {
            coding.get("code")
            for interpretation in resource.get("interpretation", [])
            for coding in interpretation.get("coding", [])
        }
        subject = resource.get("subject", {}).get("reference", "")
        if codes & set(ABNORMAL_CODES) and subject.removeprefix("Patient/") in counts:
            counts[subject.removeprefix("Patient/")] += 1
    assert any(counts.values())  # the sandbox has abnormal Observations: the SQL is exercised
    return counts


def test_demo_counts_come_back_from_the_emulator(sandbox: Sandbox) -> None:
    """`fhir-assets demo --warehouse snowflake`'s core: land, then count rows in Snowflake."""
    from fhir_assets.catalog import select
    from fhir_assets.sandbox.demo import format_counts, run_demo

    catalog = select("Patient,Condition")
    with emulator_settings() as snowflake, dg.instance_for_test() as instance:
        counts = run_demo(
            sandbox, WarehouseSettings("snowflake", snowflake=snowflake), catalog, instance
        )
    assert [(c.table, c.warehouse) for c in counts] == [
        (f"fhir_raw.{s.table}", sandbox.counts([s.resource_type])[s.resource_type]) for s in catalog
    ]
    assert format_counts(counts, "snowflake").splitlines()[0].split() == [
        "table",
        "server",
        "snowflake",
    ]


def test_snowflake_audit_writer_appends_records() -> None:
    from datetime import UTC, datetime

    from fhir_assets.warehouse.snowflake import connect
    from fhir_assets.writeback import AuditRecord, audit_writer

    record = AuditRecord(
        datetime(2026, 12, 1, tzinfo=UTC), "run-1", "https://ehr.example/fhir", "tx-1", 1,
        "Observation", "o1", "urn:x|p1", "update", "ab" * 32, 200, "updated", "2", None,
    )  # fmt: skip
    with emulator_settings() as settings:
        connection = connect(settings)
        try:
            writer = audit_writer("snowflake", connection)
            writer.record([record, record])
            writer.record([])
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT run_id, resource_id, http_status, outcome FROM fhir_audit.writes"
                )
                rows = cursor.fetchall()
        finally:
            connection.close()
    assert rows == [("run-1", "o1", 200, "updated")] * 2


def test_writeback_demo_dry_runs_twice(sandbox: Sandbox, tmp_path: Path) -> None:
    """`fhir-assets writeback --dry-run`: the demo lands the whole history, then diffs."""
    from fhir_assets.sandbox.writeback_demo import format_reports, run_writeback_demo

    warehouse = WarehouseSettings(duckdb=DuckDBSettings(path=str(tmp_path / "wb.duckdb")))
    with dg.instance_for_test() as instance:
        reports = run_writeback_demo(sandbox, warehouse, dry_run=True, instance=instance)
    patients = sandbox.counts(["Patient"])["Patient"]
    assert [(r["dry_run"], r["resources"], r["failed"]) for r in reports] == [
        (True, patients, 0)
    ] * 2
    assert format_reports(reports).count("dry run") == 2
