"""A local production run (``make prod-local``): real PostgreSQL, the FHIR sandbox, two code
servers, ``dagster-daemon`` and ``dagster-webserver`` on deploy/dagster.yaml, driven through the
GraphQL API like the UI drives them. Prints each step's outcome and time; exit 1 if one failed.

Hourly partitions (``FHIR_PARTITIONS=hourly``) with a lag chosen so the sync schedule's cron
(``<lag + 5> * * * *``) fires a minute or two after the start: the daemon launches a real tick
instead of the test forging one. The first partition holds all the sandbox's older data.
Then a run worker is SIGKILLed and a run is lost while STARTING (recovery.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from fhir_assets.fhir.ratelimit_postgres import shared_rate_table
from fhir_assets.sandbox import Sandbox
from fhir_assets.sensors import ExportCursor

from . import graphql as gql
from . import recovery
from .postgres import Postgres
from .stack import REPO, Stack

TYPES = "Patient"  # one type: a run is two steps (asset, checks), each its own process
SCHEDULE, EXPORT_SENSOR = "sync_all_schedule", "fhir_bulk_export_sensor"
RAW = ["fhir_raw", "patient"]
# `fhir-assets pools --apply` against the sandbox (profile sekmet)
POOLS = {"duckdb": 1, "fhir:127.0.0.1": 2, "fhir-bulk:127.0.0.1": 1}


@dataclass
class Report:
    """Each step's outcome and time, printed as it happens."""

    lines: list[tuple[str, bool, float, str]] = field(default_factory=list)
    echo: Callable[[str], None] = print

    def step(self, name: str, action: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = action(), True
        except Exception as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        seconds = time.monotonic() - started
        self.lines.append((name, ok, seconds, detail))
        self.echo(f"[{'ok' if ok else 'FAILED'}] {name} ({seconds:.1f}s): {detail}")
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.lines) and all(ok for _, ok, _, _ in self.lines)


def schedule_lag(now: datetime, startup: timedelta) -> tuple[int, datetime]:
    """The sync lag (minutes) whose hourly cron fires at the first minute after ``startup``, and
    that moment. The cron minute is lag + 5 with lag under 55, so minutes 0-4 wait for minute 5."""
    tick = (now + startup).replace(second=0, microsecond=0) + timedelta(minutes=1)
    if tick.minute < 5:
        tick = tick.replace(minute=5)
    return tick.minute - 5, tick


def fhir_environment(sandbox: Sandbox, root: Path, lag: int, start: datetime) -> dict[str, str]:
    return sandbox.environment() | {
        "FHIR_RESOURCE_TYPES": TYPES,
        "FHIR_PARTITIONS": "hourly",
        "FHIR_SYNC_START": start.strftime("%Y-%m-%dT%H:00:00"),
        "FHIR_SYNC_LAG_MINUTES": str(lag),
        "FHIR_DUCKDB_PATH": str(root / "warehouse.duckdb"),
        "FHIR_BULK_DIR": str(root / "bulk"),
        "FHIR_BULK_INTERVAL_S": str(24 * 3600),  # one export in this run
    }


@dataclass
class Scenario:
    stack: Stack
    sandbox: Sandbox
    tick: datetime
    first: datetime  # the first hourly partition
    ids: dict[str, str] = field(default_factory=dict)

    def key(self, moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d-%H:00")

    def two_code_servers(self) -> str:
        a, b = self.stack.code_ports
        self.stack.wait_ready()
        return f"webserver loads location 'fhir_assets' from :{a}, the daemon from :{b}"

    def pools_and_automation(self) -> str:
        # the sandbox profile's limits, set as a deployment sets them
        applied = subprocess.run(
            [str(Path(sys.executable).parent / "fhir-assets"), "pools", "--apply"],
            env=self.stack.environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert applied.returncode == 0, applied.stderr
        assert gql.pools(self.stack) == POOLS, gql.pools(self.stack)
        schedule = gql.start_schedule(self.stack, SCHEDULE)
        sensor = gql.start_sensor(self.stack, EXPORT_SENSOR)
        assert (schedule, sensor) == ("RUNNING", "RUNNING"), (schedule, sensor)
        return f"pools {gql.pools(self.stack)}; {SCHEDULE} and {EXPORT_SENSOR} RUNNING"

    def launch_backfill(self) -> str:
        keys = [self.key(self.first + timedelta(hours=h)) for h in range(3)]
        self.ids["backfill_id"] = gql.launch_backfill(self.stack, RAW, keys)
        return f"backfill {self.ids['backfill_id']} of {keys[0]}..{keys[-1]} requested"

    def backfill_done(self) -> str:
        backfill_id = self.ids["backfill_id"]
        status = gql.wait_for("backfill finished", self._backfill_finished, timeout=240)
        backfill_runs = gql.runs(self.stack, dagster__backfill=backfill_id)
        assert status in {"COMPLETED", "COMPLETED_SUCCESS"}, status
        assert [r["status"] for r in backfill_runs] == ["SUCCESS"], backfill_runs
        self.ids["backfill"] = backfill_runs[0]["runId"]
        return f"{status}: one run for three partitions (single-run backfill policy), SUCCESS"

    def export_then_daemon_killed(self) -> str:
        # kill while a run is in progress and the export's run has been requested
        every = gql.wait_for("bulk_land requested while a run is STARTED", self._mid_run, 240, 0.5)
        self.ids["export"] = self._export_run()["runId"]  # type: ignore[index]
        states = ", ".join(f"{r['jobName']} {r['status']}" for r in every)
        cursor = gql.sensor_state(self.stack, EXPORT_SENSOR)[1]
        self.ids["cursor"] = cursor or ""
        self.stack.kill("daemon")  # SIGKILL, mid-run
        self.stack.terminate("webserver")
        self.stack.write_home()  # DAGSTER_HOME wiped: only dagster.yaml again
        self.stack.start_daemon()
        self.stack.start_webserver()
        self.stack.wait_ready()
        return f"daemon SIGKILLed with runs: {states}; DAGSTER_HOME wiped; both restarted"

    def _export_run(self) -> dict[str, Any] | None:
        found = gql.runs(self.stack, dagster__sensor_name=EXPORT_SENSOR)
        return found[0] if found else None

    def _mid_run(self) -> list[dict[str, Any]] | None:
        every = gql.runs(self.stack)
        started = any(r["status"] == "STARTED" for r in every)
        return every if started and self._export_run() else None

    def export_landed(self) -> str:
        done = gql.wait_for("bulk_land finished", lambda: self._finished(self.ids["export"]), 240)
        assert done["status"] == "SUCCESS", done
        exported = gql.runs(self.stack, dagster__sensor_name=EXPORT_SENSOR)
        assert len(exported) == 1, f"{len(exported)} bulk_land runs"
        status, cursor = gql.sensor_state(self.stack, EXPORT_SENSOR)
        before, after = (ExportCursor.from_json(c) for c in (self.ids["cursor"], cursor))
        # the cursor survived the wipe, and no second export was kicked off after the restart
        assert status == "RUNNING" and after.last_kickoff == before.last_kickoff > 0, cursor
        partition = gql.tag(done, "dagster/partition")
        return f"bulk_land {partition} SUCCESS; one run, one export kick-off, cursor kept"

    def _finished(self, run_id: str) -> dict[str, Any] | None:
        found = [r for r in gql.runs(self.stack) if r["runId"] == run_id]
        return found[0] if found and found[0]["status"] in gql.TERMINAL else None

    def _backfill_finished(self) -> str | None:
        status = gql.backfill_status(self.stack, self.ids["backfill_id"])
        return None if status in {"REQUESTED", "CANCELING"} else status

    def _schedule_run_finished(self) -> list[dict[str, Any]] | None:
        found = gql.runs(self.stack, dagster__schedule_name=SCHEDULE)
        return found if any(r["status"] in gql.TERMINAL for r in found) else None

    def schedule_tick(self) -> str:
        wait = (self.tick - datetime.now(UTC)).total_seconds() + 240
        ticked = gql.wait_for("the schedule's run finished", self._schedule_run_finished, wait)
        assert [r["status"] for r in ticked] == ["SUCCESS"], ticked
        key = self.key(self.tick.replace(minute=0) - timedelta(hours=1))
        assert gql.tag(ticked[0], "dagster/partition") == key, ticked[0]["tags"]
        assert gql.schedule_status(self.stack, SCHEDULE) == "RUNNING"
        return f"tick at {self.tick:%H:%M} UTC launched sync_all for {key}: SUCCESS, one run"

    def run_worker_killed(self) -> str:
        return recovery.kill_a_run_worker(
            self.stack, [RAW], self.key(self.first + timedelta(hours=3))
        )

    def starting_run_lost(self) -> str:
        return recovery.lose_a_starting_run(
            self.stack, [RAW], self.key(self.first + timedelta(hours=4))
        )

    def nothing_lost(self) -> str:
        every = {r["runId"]: r for r in gql.runs(self.stack)}
        assert self.ids["backfill"] in every, "the backfill run is gone"
        assert gql.pools(self.stack) == POOLS
        # what the daemon launched (schedule, sensors, backfills): runs launched from the UI
        # (recovery.py) carry the webserver's code server
        launched = ("dagster/backfill", "dagster/sensor_name", "dagster/schedule_name")
        daemon = [r for r in every.values() if any(gql.tag(r, t) for t in launched)]
        ports = {gql.origin_port(r) for r in daemon}
        assert ports == {str(self.stack.code_ports[1])}, ports
        table = rate_limit_table(self.stack.env)
        return (f"after the wipe: {len(every)} runs, pools and sensor cursor from Postgres; "
                f"every run launched by the daemon's code server :{ports.pop()}; "
                f"the runs took their requests from {table}")  # fmt: skip


def rate_limit_table(env: dict[str, str]) -> str:
    """The server's rate-limit table, which only runs that read FHIR_RATE_LIMIT_POSTGRES create."""
    import psycopg2

    dsn = env["FHIR_RATE_LIMIT_POSTGRES"]
    name = f"ratelimit___{shared_rate_table(env['FHIR_BASE_URL'], dsn).name}"
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from pg_tables where tablename = %s", (name,))
        found = cursor.fetchone()
    connection.close()
    assert found == (1,), f"no table {name}: the runs did not share their budget in Postgres"
    return name


def warehouse_matches(sandbox: Sandbox, path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as connection:
        landed = connection.execute("select count(*) from fhir_raw.patient").fetchone()
    server = sandbox.counts(["Patient"])["Patient"]
    assert landed is not None and landed[0] == server, (landed, server)
    return f"fhir_raw.patient holds {server} rows, as the server"


def run(report: Report, home: Path = REPO / ".fhir-assets") -> None:
    """The whole scenario; every step recorded in ``report``."""
    root = Path(tempfile.mkdtemp(prefix="fhir-assets-prod-"))
    with Postgres() as postgres, Sandbox(home=home) as sandbox:
        now = datetime.now(UTC)
        lag, tick = schedule_lag(now, timedelta(seconds=100))
        first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
        env = os.environ | postgres.environment() | fhir_environment(sandbox, root, lag, first)
        # the runs share the sandbox's request budget through the instance's database
        env["FHIR_RATE_LIMIT_POSTGRES"] = postgres.dsn()
        stack = Stack(root, dict(env))
        scenario = Scenario(stack, sandbox, tick, first)
        stack.start()
        try:
            for name, action in (
                ("two code servers serve one location", scenario.two_code_servers),
                ("pools set, schedule and export sensor started", scenario.pools_and_automation),
                ("backfill of three partitions launched", scenario.launch_backfill),
                (
                    "daemon SIGKILLed mid-run, DAGSTER_HOME wiped",
                    scenario.export_then_daemon_killed,
                ),
                ("backfill completed", scenario.backfill_done),
                ("export sensor -> bulk_land landed, no duplicate", scenario.export_landed),
                ("schedule tick -> partition sync", scenario.schedule_tick),
                (
                    "run worker SIGKILLed -> slots freed, retried from the failed step",
                    scenario.run_worker_killed,
                ),
                ("run STARTING at the daemon's death -> relaunched", scenario.starting_run_lost),
                ("nothing lost with DAGSTER_HOME", scenario.nothing_lost),
            ):
                if not report.step(name, action):
                    break
        finally:
            stack.stop()
        if report.ok:
            report.step("warehouse", lambda: warehouse_matches(sandbox, root / "warehouse.duckdb"))
        if not report.ok:
            for name in ("daemon", "webserver", "code-b"):
                report.echo(f"--- {name} log (tail)\n{stack.log(name)}")


def main() -> int:
    report = Report()
    started = time.monotonic()
    run(report)
    print(f"{'all steps passed' if report.ok else 'FAILED'} in {time.monotonic() - started:.0f}s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
