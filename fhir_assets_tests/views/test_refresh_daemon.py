"""Views refresh themselves under the real daemon, as a user runs them: the project's own code
location (``fhir_assets.definitions``), a ``dagster-daemon`` process, and a raw backfill launched
through the GraphQL mutation the UI's "Materialize" dialog sends. Nothing turns any automation
on: the view is rebuilt by the views' sensor, which runs by default, after its raw table's last
backfilled partition landed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from fhir_assets.sandbox import Sandbox

from ..sync.test_partitioned_assets import data_day

RAW, VIEW = dg.AssetKey(["fhir_raw", "patient"]), dg.AssetKey(["fhir", "patient"])
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
SENSOR_TAG = "dagster/sensor_name"
DEADLINE_S = 240  # bounds a hang only: the sensor ticks every 30 s


@pytest.fixture
def environment(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The deployment environment of a user's install, pointed at the sandbox (three daily
    partitions ending on the day the seed was written); returns DAGSTER_HOME."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:  # its SQLite files, made once:
        instance.get_runs_count()  # processes that start together on an empty home race to
        instance.get_latest_materialization_event(RAW)  # create them
        instance.all_instigator_state()
    day = data_day(sandbox)
    for name in [n for n in os.environ if n.startswith(("FHIR_", "SNOWFLAKE_"))]:
        monkeypatch.delenv(name)
    variables = sandbox.environment() | {
        "DAGSTER_HOME": str(home),
        "FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
        "FHIR_RESOURCE_TYPES": "Patient",
        "FHIR_SYNC_START": (day - timedelta(days=2)).strftime("%Y-%m-%d"),
        "FHIR_SYNC_LAG_MINUTES": "0",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: fhir_assets.definitions\n"
        "      location_name: fhir_assets\n"
    )
    return home


@pytest.fixture
def daemon(environment: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` over the workspace, stopped (with its children) afterwards."""
    workspace = environment.parent / "workspace.yaml"
    binary = Path(sys.executable).with_name("dagster-daemon")
    with open(environment.parent / "daemon.log", "wb") as log:
        process = subprocess.Popen(
            [str(binary), "run", "-w", str(workspace)],
            cwd=environment.parent,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def launch_ui_backfill(instance: dg.DagsterInstance, workspace: Path) -> str:
    """Every raw partition, through the UI's own mutation with its defaults."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    with define_out_of_process_context(str(workspace), None, instance) as context:
        node = context.asset_graph.get(RAW)
        keys = node.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        params = {
            "assetSelection": [{"path": RAW.path}],
            "partitionNames": list(keys),
            "fromFailure": False,
            "tags": [],
        }
        result = execute_dagster_graphql(context, LAUNCH, {"p": params})
    launched = result.data["launchPartitionBackfill"]
    assert "backfillId" in launched, launched
    return str(launched["backfillId"])


def wait_for(what: str, predicate, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE_S} s\n{log.read_text()[-4000:]}")
        time.sleep(2)


def latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.EventLogEntry | None:
    return instance.get_latest_materialization_event(key)


@pytest.mark.slow
@pytest.mark.timeout(900)  # two waits of up to DEADLINE_S each, on a loaded machine
def test_the_daemon_rebuilds_the_view_after_a_ui_backfill(
    sandbox: Sandbox, environment: Path, daemon: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.from_config(str(environment)) as instance:
        backfill_id = launch_ui_backfill(instance, tmp_path / "workspace.yaml")
        done = {BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED}
        done |= {BulkActionStatus.FAILED, BulkActionStatus.CANCELED}

        def finished() -> bool:
            backfill = instance.get_backfill(backfill_id)
            return backfill is not None and backfill.status in done

        wait_for("the backfill", finished, log)
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None and backfill.status == BulkActionStatus.COMPLETED_SUCCESS
        raw = latest(instance, RAW)
        assert raw is not None

        def rebuilt() -> bool:
            view = latest(instance, VIEW)
            return view is not None and view.timestamp > raw.timestamp

        wait_for("the view's rebuild", rebuilt, log)
        view = latest(instance, VIEW)
        assert view is not None and view.run_id
        run = instance.get_run_by_id(view.run_id)
        assert run is not None and run.tags.get(SENSOR_TAG) == "fhir_views_refresh_sensor"
        materialization = view.asset_materialization
        assert materialization is not None
        patients = sandbox.counts(["Patient"])["Patient"]
        assert materialization.metadata["rows"].value == patients
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM fhir.patient").fetchone() == (patients,)
