"""The Dagster GraphQL calls of the local production run (what the UI sends for the same clicks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .stack import LOCATION, REPOSITORY, Stack

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

START_SCHEDULE = """mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) {
  __typename ... on ScheduleStateResult { scheduleState { status } }
  ... on PythonError { message } } }"""
START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } } }"""
RUNS = """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
  runId status jobName tags { key value }
  repositoryOrigin { repositoryLocationName repositoryLocationMetadata { key value } } } } } }"""
POOLS = "{ instance { concurrencyLimits { concurrencyKey slotCount } } }"
CLAIMS = """{ instance { concurrencyLimits { concurrencyKey claimedSlots { runId stepKey } } } }"""
LAUNCH_RUN = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { runId status parentRunId
  stepKeysToExecute startTime } } }"""
LOGS = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
  __typename ... on MessageEvent { message } ... on StepEvent { stepKey } } } } }"""
SENSOR = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor {
  sensorState { status typeSpecificData { ... on SensorData { lastCursor } } } } } }"""
SCHEDULE = """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
  ... on Schedule { scheduleState { status } } } }"""


def selector(kind: str, name: str) -> dict[str, str]:
    return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, f"{kind}Name": name}


def start_schedule(stack: Stack, name: str) -> str:
    answer = stack.graphql(START_SCHEDULE, {"s": selector("schedule", name)})["startSchedule"]
    return str(answer.get("scheduleState", answer).get("status", answer))


def start_sensor(stack: Stack, name: str) -> str:
    answer = stack.graphql(START_SENSOR, {"s": selector("sensor", name)})["startSensor"]
    return str(answer.get("sensorState", answer).get("status", answer))


def schedule_status(stack: Stack, name: str) -> str:
    data = stack.graphql(SCHEDULE, {"s": selector("schedule", name)})
    return str(data["scheduleOrError"]["scheduleState"]["status"])


def sensor_state(stack: Stack, name: str) -> tuple[str, str | None]:
    """The sensor's status and its stored cursor."""
    state = stack.graphql(SENSOR, {"s": selector("sensor", name)})["sensorOrError"]["sensorState"]
    return state["status"], state["typeSpecificData"]["lastCursor"]


def launch_backfill(stack: Stack, asset: list[str], partitions: list[str]) -> str:
    params = {"partitionNames": partitions, "assetSelection": [{"path": asset}]}
    answer = stack.graphql(LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
    if "backfillId" not in answer:
        raise RuntimeError(f"backfill refused: {answer}")
    return str(answer["backfillId"])


def backfill_status(stack: Stack, backfill_id: str) -> str:
    data = stack.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
    return str(data.get("status"))


def runs(stack: Stack, **tags: str) -> list[dict[str, Any]]:
    """Runs carrying every given tag (``dagster/...`` spelled with ``__`` for ``/``)."""
    pairs = [{"key": k.replace("__", "/"), "value": v} for k, v in tags.items()]
    data = stack.graphql(RUNS, {"f": {"tags": pairs}})
    return list(data["runsOrError"]["results"])


def pools(stack: Stack) -> dict[str, int]:
    limits = stack.graphql(POOLS)["instance"]["concurrencyLimits"]
    return {entry["concurrencyKey"]: entry["slotCount"] for entry in limits}


def claimed_by(stack: Stack, run_id: str) -> list[str]:
    """``pool:step`` of every pool slot ``run_id`` still holds."""
    limits = stack.graphql(CLAIMS)["instance"]["concurrencyLimits"]
    return [f"{entry['concurrencyKey']}:{slot['stepKey']}" for entry in limits
            for slot in entry["claimedSlots"] if slot["runId"] == run_id]  # fmt: skip


def launch_run(stack: Stack, assets: list[list[str]], partition: str) -> str:
    """What the UI's "Materialize" sends for one partition of some assets (the run is queued)."""
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                     "jobName": "__ASSET_JOB", "assetSelection": [{"path": a} for a in assets]},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
        "runConfigData": {},
    }  # fmt: skip
    answer = stack.graphql(LAUNCH_RUN, {"p": params})["launchRun"]
    if "run" not in answer:
        raise RuntimeError(f"launch refused: {answer}")
    return str(answer["run"]["runId"])


def run(stack: Stack, run_id: str) -> dict[str, Any]:
    return dict(stack.graphql(RUN, {"id": run_id})["runOrError"])


def logs(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    return list(stack.graphql(LOGS, {"id": run_id})["logsForRun"]["events"])


def retries_of(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """Runs whose parent is ``run_id`` (run retries tag them dagster/parent_run_id)."""
    return runs(stack, dagster__parent_run_id=run_id)


def tag(run: dict[str, Any], key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def origin_port(run: dict[str, Any]) -> str | None:
    """The port of the code server that launched the run (from its recorded origin)."""
    metadata = run["repositoryOrigin"]["repositoryLocationMetadata"]
    return next((m["value"] for m in metadata if m["key"] == "port"), None)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """Poll ``probe`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")
