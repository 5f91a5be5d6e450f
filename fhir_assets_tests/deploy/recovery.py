"""The recovery steps of ``make prod-local`` (deploy/dagster.yaml's run monitoring and retries):

- a run worker SIGKILLed (with its step process) while a pooled step is being launched: the
  run's pool slots are free again within 60 s, its retry starts within 90 s and executes only
  the steps that had not succeeded, and succeeds;
- a run left STARTING when the daemon died (its launch lost with the daemon's code server):
  detected by run monitoring and relaunched by run retries within 90 s of the daemon's restart.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from . import graphql as gql
from .stack import Stack

SLOT_FREED_S, RETRY_STARTED_S = 60, 90
RUN_PID = re.compile(r"Started process for run \(pid: (\d+)\)")
LAUNCHING = re.compile(r'Launching subprocess for "(.+)"')


def descendants(pid: int) -> list[int]:
    """``pid``'s child processes, recursively (from /proc: no psutil here)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and its descendants (an OOM kill of a run worker takes its steps)."""
    victims = [pid, *descendants(pid)]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return victims


def messages(stack: Stack, run_id: str) -> list[str]:
    return [e.get("message") or "" for e in gql.logs(stack, run_id)]


def succeeded_steps(stack: Stack, run_id: str) -> set[str]:
    return {
        e["stepKey"]
        for e in gql.logs(stack, run_id)
        if e["__typename"] == "ExecutionStepSuccessEvent"
    }


def worker_at_a_step_launch(stack: Stack, run_id: str) -> tuple[int, str] | None:
    """The run worker's pid once it launches a step after the first one succeeded (or the
    first, in a one-step run): the step's pool slot is claimed by then."""
    said = messages(stack, run_id)
    pid = next((int(m[1]) for m in map(RUN_PID.search, said) if m), None)
    launched = [m[1] for m in map(LAUNCHING.search, said) if m]
    done = succeeded_steps(stack, run_id)
    if pid is None or not launched:
        return None
    plan = gql.run(stack, run_id).get("stepKeysToExecute") or launched
    later = [step for step in launched if step not in done]
    if len(plan) > 1 and not done:
        return None  # wait for the first step to succeed, to see the retry skip it
    return (pid, later[-1]) if later else None


def kill_a_run_worker(stack: Stack, assets: list[list[str]], partition: str) -> str:
    """In a run of several steps the kill comes at a step launched after the first succeeded, so
    the retry must skip what succeeded; the scenario's run (one raw asset, its checks inside)
    is one step, so there the retry runs that step again."""
    run_id = gql.launch_run(stack, assets, partition)
    found = gql.wait_for("the run worker launching a step", lambda: worker_at_a_step_launch(
        stack, run_id), timeout=180, interval=0.2)  # fmt: skip
    pid, step = found
    killed_at = time.monotonic()
    victims = kill_tree(pid)
    done = succeeded_steps(stack, run_id)
    held = gql.claimed_by(stack, run_id)  # the dead run's slots, until run monitoring frees them
    gql.wait_for(f"pool slots {held} of {run_id} freed", lambda: not gql.claimed_by(stack, run_id),
                 timeout=SLOT_FREED_S, interval=1)  # fmt: skip
    freed_s = time.monotonic() - killed_at
    left = RETRY_STARTED_S - (time.monotonic() - killed_at)
    retry = gql.wait_for("the retry started", lambda: started_retry(stack, run_id), left, 1)
    retry_s = time.monotonic() - killed_at
    steps = set(retry["stepKeysToExecute"] or [])
    plan = set(gql.run(stack, run_id)["stepKeysToExecute"] or steps | done)
    assert steps and steps == plan - done, (steps, plan, done)  # from the failed step on
    finished = gql.wait_for("the retry finished", lambda: finished_run(stack, retry["runId"]), 180)
    assert finished["status"] == "SUCCESS", finished
    assert gql.run(stack, run_id)["status"] == "FAILURE"
    return (
        f"worker {pid} (+{len(victims) - 1} step processes) SIGKILLed at {step}; slots {held} "
        f"freed after {freed_s:.0f}s; retry {retry['runId'][:8]} started after {retry_s:.0f}s "
        f"with {sorted(steps)} only (skipped {sorted(done)}): SUCCESS"
    )


def started_retry(stack: Stack, run_id: str) -> dict[str, Any] | None:
    for found in gql.retries_of(stack, run_id):
        retry = gql.run(stack, found["runId"])
        if retry["status"] in {"STARTED", "SUCCESS", "FAILURE"}:
            return retry
    return None


def finished_run(stack: Stack, run_id: str) -> dict[str, Any] | None:
    found = gql.run(stack, run_id)
    return found if found["status"] in gql.TERMINAL else None


def starting(stack: Stack, run_id: str) -> bool:
    return gql.run(stack, run_id)["status"] == "STARTING"


def lose_a_starting_run(stack: Stack, assets: list[list[str]], partition: str) -> str:
    """The daemon's code server stops answering, so the daemon's launch of a queued run hangs
    with the run STARTING; then the daemon dies (SIGKILL) and the launch is lost with its code
    server (SIGKILL, restarted empty). Run monitoring must fail the run and run retries relaunch
    it, within 90 s of the daemon's restart."""
    stack.pause("code-b")
    try:
        run_id = gql.launch_run(stack, assets, partition)
        gql.wait_for("the run STARTING", lambda: starting(stack, run_id), 120, 0.5)
        stack.kill("daemon")
        stack.kill("code-b")  # a stopped process dies on SIGKILL too
    except BaseException:
        stack.pause("code-b", paused=False)
        raise
    stack.start_code_server("code-b")
    stack.start_daemon()
    restarted = time.monotonic()
    retry = gql.wait_for("the lost run relaunched", lambda: started_retry(stack, run_id),
                         RETRY_STARTED_S, 1)  # fmt: skip
    relaunched_s = time.monotonic() - restarted
    lost = gql.run(stack, run_id)
    assert lost["status"] == "FAILURE", lost
    finished = gql.wait_for(
        "the relaunch finished", lambda: finished_run(stack, retry["runId"]), 180
    )
    assert finished["status"] == "SUCCESS", finished
    return (
        f"run {run_id[:8]} STARTING at the daemon's SIGKILL, its launch lost: failed by run "
        f"monitoring and relaunched {relaunched_s:.0f}s after the daemon restarted: SUCCESS"
    )
