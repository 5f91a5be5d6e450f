"""stop_group: a process and its children stop together, stubborn ones by SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fhir_assets.processes import stop_group

# A leader that starts a child in its group, prints the child's pid, then (optionally) exits.
LEADER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
if sys.argv[2] == "stay":
    time.sleep(120)
"""
SLEEPER = "import time; time.sleep(120)"
STUBBORN_LEADER = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(120)
"""


def start(child: str, leader: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", LEADER, child, leader],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def gone(pid: int, within: float = 60.0) -> bool:  # returns as soon as it is gone
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a killed child of an exited leader is a zombie until init reaps it
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:  # reaped between the two looks
            return True
        time.sleep(0.05)
    return False


def test_the_leader_and_its_child_stop_together() -> None:
    process, child = start(SLEEPER, "stay")
    stop_group(process, timeout=10)
    assert process.returncode is not None and gone(child)


def test_a_leader_that_ignores_sigterm_is_killed_with_its_group_after_the_timeout() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_LEADER, SLEEPER],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    child = int(process.stdout.readline())  # printed once its SIGTERM handler is in place
    started = time.monotonic()
    stop_group(process, timeout=1)
    assert process.returncode == -9 and gone(child)
    assert time.monotonic() - started < 60  # after the 1 s timeout, not the leader's 120 s sleep


def test_children_of_a_leader_that_already_exited_are_stopped() -> None:
    process, child = start(SLEEPER, "leave")
    process.wait(timeout=30)
    stop_group(process)
    assert gone(child)


def test_a_group_that_is_gone_is_no_error() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    process.wait(timeout=30)
    stop_group(process)
    assert process.returncode == 0
