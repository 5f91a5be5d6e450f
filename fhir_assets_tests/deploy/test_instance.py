"""deploy/dagster.yaml loads as a Dagster instance against a real PostgreSQL, keeps its state
there, and pools set through the CLI live in Postgres, not in DAGSTER_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from .postgres import DATABASE, USER, Postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("postgres")]

DAGSTER = str(Path(sys.executable).parent / "dagster")
# What the loaded instance is, as the processes of a deployment see it.
DESCRIBE = """
import dagster as dg
with dg.DagsterInstance.get() as i:
    pools = i.get_concurrency_config().pool_config
    print(type(i.run_storage).__name__, type(i.event_log_storage).__name__,
          type(i.schedule_storage).__name__, type(i.run_coordinator).__name__,
          i.run_retries_max_retries, i.run_retries_retry_on_asset_or_op_failure,
          i.run_monitoring_enabled, pools.default_pool_limit, pools.pool_granularity.value,
          i.telemetry_enabled)
"""


def dagster(home: Path, postgres: Postgres, *args: str) -> str:
    env = (
        os.environ
        | postgres.environment()
        | {
            "DAGSTER_HOME": str(home),
            "DAGSTER_COMPUTE_LOG_DIR": str(home.parent / "compute_logs"),
        }
    )
    result = subprocess.run(
        [*args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def tables(postgres: Postgres) -> set[str]:
    connection = psycopg2.connect(
        host="127.0.0.1", port=postgres.port, user=USER, password=postgres.password,
        dbname=DATABASE,
    )  # fmt: skip
    try:
        with connection.cursor() as cursor:
            cursor.execute("select tablename from pg_tables where schemaname = 'public'")
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


def test_instance_loads_every_setting_against_postgres(postgres: Postgres, dagster_home: Path):
    described = dagster(dagster_home, postgres, sys.executable, "-c", DESCRIBE).split()
    assert described == [
        "PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage",
        "QueuedRunCoordinator", "2", "False", "True", "1", "op", "False",
    ]  # fmt: skip
    assert "schema" in dagster(dagster_home, postgres, DAGSTER, "instance", "info")
    # run, event-log and schedule storage all created their tables in the one database
    assert {"runs", "event_logs", "jobs", "job_ticks", "concurrency_limits"} <= tables(postgres)
    assert sorted(p.name for p in dagster_home.iterdir()) == ["dagster.yaml"]


def test_pool_limits_survive_a_wiped_dagster_home(postgres: Postgres, dagster_home: Path):
    dagster(dagster_home, postgres, DAGSTER, "instance", "concurrency", "set", "duckdb", "1")
    dagster(
        dagster_home, postgres, DAGSTER, "instance", "concurrency", "set", "fhir:127.0.0.1", "2"
    )
    config = (dagster_home / "dagster.yaml").read_text()
    shutil.rmtree(dagster_home)
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(config)
    limits = dagster(dagster_home, postgres, DAGSTER, "instance", "concurrency", "get", "--all")
    assert '"duckdb": 0 / 1 slots' in limits
    assert '"fhir:127.0.0.1": 0 / 2 slots' in limits
