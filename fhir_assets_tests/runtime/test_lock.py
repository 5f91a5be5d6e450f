"""The DuckDB lock: a raw sync holds it only to write; a foreign holder is waited for
(FHIR_DUCKDB_LOCK_WAIT_S, on every path), named by process id, then reported in one sentence.
Real files, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fhir_assets.assets.defs import build_defs
from fhir_assets.catalog import select
from fhir_assets.sandbox import Sandbox
from fhir_assets.settings import Settings
from fhir_assets.warehouse.duckdb_file import LOCKED, WAITING, connect_waiting

TYPES = "Patient,Encounter,Condition"
# Opens the file read-only for HOLD seconds, closes it for GAP seconds, until the stop file exists.
READER = """
import os, sys, time, duckdb
path, stop, count = sys.argv[1], sys.argv[2], sys.argv[5]
hold, gap = float(sys.argv[3]), float(sys.argv[4])
n = 0
while not os.path.exists(stop):
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.IOException:
        time.sleep(0.05)
        continue
    con.execute("select count(*) from information_schema.tables").fetchall()
    n += 1
    open(count + ".tmp", "w").write(str(n))
    os.replace(count + ".tmp", count)  # whole: the test may read it at any moment
    time.sleep(hold)
    con.close()
    time.sleep(gap)
"""


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[tuple[Path, Callable[..., subprocess.Popen[bytes]]]]:
    """Start a process that keeps opening ``path`` read-only (like a notebook between queries)."""
    started: list[subprocess.Popen[bytes]] = []
    stop = tmp_path / "stop-reader"
    count = tmp_path / "reader-opens"

    def start(path: Path, hold: float, gap: float) -> subprocess.Popen[bytes]:
        args = [str(path), str(stop), str(hold), str(gap), str(count)]
        process = subprocess.Popen([sys.executable, "-c", READER, *args])
        started.append(process)
        deadline = time.monotonic() + 120  # a Python start and a DuckDB import, under load
        while not count.exists():
            assert process.poll() is None, "the reader exited"
            assert time.monotonic() < deadline, "the reader never opened the file"
            time.sleep(0.05)
        return process

    yield count, start
    stop.touch()
    for process in started:
        process.kill()  # it may be mid-hold, SIGTERM ignored (xdist); it owns nothing
        process.wait(timeout=30)


def make_file(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select 1 as x")


def materialize_patient(sandbox: Sandbox, path: Path, lock_wait_s: float):
    """The unpartitioned Patient asset into ``path``, through the resource ``build_defs`` makes
    (its ``lock_wait_s`` is ``FHIR_DUCKDB_LOCK_WAIT_S``)."""
    settings = Settings.from_environ(
        sandbox.environment()
        | {
            "FHIR_RESOURCE_TYPES": "Patient",
            "FHIR_PARTITIONS": "none",
            "FHIR_DUCKDB_PATH": str(path),
            "FHIR_DUCKDB_LOCK_WAIT_S": str(lock_wait_s),
        }
    )
    defs = build_defs(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        op_selection=["fhir_raw__patient"], raise_on_error=False, instance=instance
    )
    entries = instance.all_logs(result.run_id)
    waits = [e.timestamp for e in entries if e.user_message.startswith("waiting up to")]
    failures = [
        e.timestamp for e in entries if e.is_dagster_event and e.get_dagster_event().is_step_failure
    ]
    waited_s = (failures[0] - waits[0]) if waits and failures else float("nan")
    return result, [entry.user_message for entry in entries], waited_s


def test_a_step_waits_fhir_duckdb_lock_wait_s_then_fails_with_the_one_message(
    sandbox: Sandbox, tmp_path: Path, reader
) -> None:
    path = tmp_path / "held.duckdb"
    make_file(path)
    _, start = reader
    holder = start(path, hold=600.0, gap=0.0)
    result, logged, waited_s = materialize_patient(sandbox, path, lock_wait_s=2)
    # FHIR_DUCKDB_LOCK_WAIT_S, not a hard-coded 120 s or dagster-duckdb's ~100 s of retries:
    # timed on the run's own event log (the wait message to the step's failure), so a loaded
    # machine slowing Dagster's start-up does not count
    assert 1 <= waited_s < 30, waited_s  # the message comes after the first attempt
    assert not result.success
    # the program name is DuckDB's (python, python3.11, ...): everything else is the template
    before, after = WAITING.format(database=path, wait_s=2.0, holder="|").split("|")
    said = [m for m in logged if m.startswith(before + f"process {holder.pid} (")]
    assert len(said) == 1 and said[0].endswith(after), [m for m in logged if "wait" in m]
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert f"process {holder.pid}" in message and "FHIR_DUCKDB_LOCK_WAIT_S" in message
    assert LOCKED.format(database=path, wait_s=2.0, holder="X").split("X")[0] in message


def test_connect_waiting_returns_once_the_holder_lets_go(tmp_path: Path, reader) -> None:
    path = tmp_path / "busy.duckdb"
    make_file(path)
    _, start = reader
    holder = start(path, hold=2.0, gap=600.0)
    said: list[str] = []
    started = time.monotonic()
    connect_waiting(str(path), wait_s=120.0, warn=said.append).close()
    # returned once the 2 s hold ended, long before the 120 s deadline (a loaded machine may
    # delay the holder's close by seconds, never by a minute)
    assert time.monotonic() - started < 60
    assert said == [] or f"process {holder.pid}" in said[0]
    with duckdb.connect(str(path)) as con:  # free now: this process can write
        con.execute("insert into t values (2)")


@pytest.mark.parametrize("message", [WAITING, LOCKED])
def test_the_docs_quote_the_lock_messages_exactly(message: str) -> None:
    example = {"database": "F", "wait_s": 120.0, "holder": "process 1234 (python3)"}
    text = " ".join((Path(__file__).parents[2] / "docs" / "sync.md").read_text().split())
    assert message.format(**example) in text


def multiprocess_sync() -> dg.JobDefinition:
    """``sync_all``'s assets under Dagster's default multiprocess executor, settings from the
    environment (rebuilt in every step process)."""
    defs = build_defs(Settings.from_environ(os.environ))
    job = dg.define_asset_job(
        "sync_multiprocess",
        selection=dg.AssetSelection.groups("fhir_raw"),
        executor_def=dg.multiprocess_executor,
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(job.name)


def test_multiprocess_sync_succeeds_while_a_reader_opens_the_file_between_writes(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader
) -> None:
    path = tmp_path / "warehouse.duckdb"
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    environ = sandbox.environment() | {
        "FHIR_RESOURCE_TYPES": TYPES,
        "FHIR_PARTITIONS": "none",
        "FHIR_DUCKDB_PATH": str(path),
        "DAGSTER_HOME": str(home),
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    make_file(path)
    count, start = reader
    start(path, hold=1.5, gap=0.5)
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(multiprocess_sync), instance=instance)
        steps = [e for e in result.all_events if e.is_step_success]
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    # each raw asset (its checks inside), one step for the patient-reference checks and one for
    # the server's $validate checks (which read the file too)
    assert len(steps) == len(TYPES.split(",")) + 2
    assert int(count.read_text()) > 3  # the reader kept opening the file during the run
    catalog = select(TYPES)
    with duckdb.connect(str(path), read_only=True) as con:  # read-only beside the reader
        landed = {
            spec.resource_type: con.execute(
                f"select count(*) from fhir_raw.{spec.table} where not deleted"  # noqa: S608
            ).fetchone()[0]
            for spec in catalog
        }
    assert landed == sandbox.counts([spec.resource_type for spec in catalog])
