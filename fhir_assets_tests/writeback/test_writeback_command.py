"""``fhir-assets writeback`` as a user runs it: twice at once on one home, and killed."""

from __future__ import annotations

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


def test_writeback_command_twice_at_once_on_one_home_both_succeed(home: Path) -> None:
    """The second run waits for the first, then scores only its own sandbox's rows."""
    runs = [start(home), start(home)]
    outputs = [process.communicate(timeout=300) for process in runs]
    for process, (out, err) in zip(runs, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert re.search(r"run 1: created \d+, updated 0, unchanged 0, conflicts 0, failed 0", out)
        assert re.search(r"run 2: created 0, updated 0, unchanged \d+, conflicts 0, failed 0", out)
    assert sum("waiting" in err for _, err in outputs) == 1


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
    deadline = time.monotonic() + 20
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert port_is_free(port), f"the sandbox on port {port} outlived the killed command"
