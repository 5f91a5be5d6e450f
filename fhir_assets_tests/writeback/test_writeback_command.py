"""``fhir-assets writeback`` as a user runs it: twice at once on one home, and killed."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.server import port_is_free

CLI = str(Path(sys.executable).parent / "fhir-assets")
CLEARED = ("FHIR_", "SNOWFLAKE_", "DAGSTER_HOME")


@pytest.fixture
def home(sandbox_home: Path, tmp_path: Path) -> Path:
    """A fresh home holding only a copy of the seeded-database cache (nothing else to share)."""
    cached = Sandbox(home=sandbox_home).seeded_database()
    folder = tmp_path / "home"
    (folder / "sandbox" / "cache").mkdir(parents=True)
    shutil.copy(cached, folder / "sandbox" / "cache" / cached.name)
    return folder


def start(home: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    return subprocess.Popen(
        [CLI, "writeback", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=home.parent,
        env=env | {"PYTHONUNBUFFERED": "1"},  # the "sandbox at" line arrives as it is printed
    )


def said_waiting(process: subprocess.Popen[str]) -> str:
    """The line in which ``process`` says it waits for the home's lock (read up to it)."""
    assert process.stderr is not None
    for line in process.stderr:
        if "waiting" in line:
            return line
    pytest.fail(f"the run ended without waiting for the lock (exit {process.wait()})")


def test_writeback_command_twice_at_once_on_one_home_both_succeed(home: Path) -> None:
    """Both runs wait at the home's lock (held here until both are there: two processes started
    together on a loaded machine need not overlap), are released together, and each scores only
    its own sandbox's rows: one waited for the other, on the same DuckDB file and instance."""
    with (home / ".writeback.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = [start(home)]
        waited = [said_waiting(runs[0])]
        runs.append(start(home))
        waited.append(said_waiting(runs[1]))
    outputs = [process.communicate(timeout=300) for process in runs]
    for process, (out, err) in zip(runs, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert re.search(r"run 1: created \d+, updated 0, unchanged 0, conflicts 0, failed 0", out)
        assert re.search(r"run 2: created 0, updated 0, unchanged \d+, conflicts 0, failed 0", out)
    assert all(str(home) in line for line in waited)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_writeback_command_killed_takes_its_sandbox_down(home: Path, sig: signal.Signals) -> None:
    process = start(home)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if found := re.search(r"sandbox at http://127\.0\.0\.1:(\d+)/fhir", line):
                port = int(found[1])
                break
        else:
            pytest.fail(f"no sandbox line; stderr: {process.communicate()[1][-2000:]}")
        assert not port_is_free(port)
        process.send_signal(sig)
        process.communicate(timeout=60)
    finally:
        process.kill()
    deadline = time.monotonic() + 60  # the sandbox's shutdown, on a loaded machine
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert port_is_free(port), f"the sandbox on port {port} outlived the killed command"
