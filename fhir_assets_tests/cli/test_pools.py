"""``fhir-assets pools``: profile limits written to a real Dagster instance (SQLite in tmp_path),
a limit set by hand kept, and a second run queued behind the pool's one slot."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import dagster as dg
import pytest

from fhir_assets.sandbox import Sandbox

from .conftest import Run

SERVER, BULK = "fhir:127.0.0.1", "fhir-bulk:127.0.0.1"
# default_limit as in deploy/dagster.yaml: a pool without a limit of its own gets it
DAGSTER_YAML = "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 3\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "dagster"
    folder.mkdir()
    (folder / "dagster.yaml").write_text(DAGSTER_YAML)
    return folder


def limits(home: Path) -> dict[str, tuple[int | None, bool]]:
    """Each pool's limit in the instance and whether it was set (not ``default_limit``)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        infos = (
            instance.event_log_storage.get_concurrency_info(p) for p in (SERVER, BULK, "duckdb")
        )
        return {i.concurrency_key: (i.limit, not i.using_default_limit) for i in infos}


@pytest.mark.slow
def test_pools_apply_sets_the_detected_profiles_limits_and_keeps_a_users(
    run: Run, sandbox: Sandbox, home: Path
) -> None:
    env = sandbox.environment() | {"DAGSTER_HOME": str(home)}
    shown = run("pools", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "server profile: sekmet (detected" in shown.stdout
    assert [line.split()[:3] for line in shown.stdout.splitlines()[2:]] == [
        ["duckdb", "1", "3"],
        [BULK, "1", "3"],
        [SERVER, "2", "3"],
    ]
    assert limits(home) == {SERVER: (3, False), BULK: (3, False), "duckdb": (3, False)}

    with dg.DagsterInstance.from_config(str(home)) as instance:  # as `dagster instance
        instance.event_log_storage.set_concurrency_slots("duckdb", 5)  # concurrency set` does
    applied = run("pools", "--apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert limits(home) == {SERVER: (2, True), BULK: (1, True), "duckdb": (5, True)}
    assert "kept (set by hand" in applied.stdout

    forced = run("pools", "--apply", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert limits(home) == {SERVER: (2, True), BULK: (1, True), "duckdb": (1, True)}


def test_pools_needs_an_instance_and_apply_needs_a_known_profile(
    run: Run, home: Path, closed_port: int
) -> None:
    env = {"FHIR_BASE_URL": f"http://127.0.0.1:{closed_port}/fhir"}
    no_home = run("pools", env=env)
    assert no_home.returncode == 1
    assert "DAGSTER_HOME is not set" in no_home.stderr
    guessed = run("pools", "--apply", env=env | {"DAGSTER_HOME": str(home)})
    assert guessed.returncode == 1
    assert "cannot detect the server profile" in guessed.stderr
    assert "FHIR_SERVER_PROFILE" in guessed.stderr
    assert limits(home)[SERVER] == (3, False)  # nothing written


def hold_pool(home: str, name: str, folder: str) -> None:
    """One run of an asset on the server's pool that holds its slot until ``<name>.release``."""
    marks = Path(folder)

    @dg.asset(name=name, pool=SERVER)
    def step() -> None:
        (marks / f"{name}.start").write_text(str(time.time()))
        deadline = time.monotonic() + 120
        while not (marks / f"{name}.release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (marks / f"{name}.end").write_text(str(time.time()))

    with dg.DagsterInstance.from_config(home) as instance:
        assert dg.materialize([step], instance=instance).success


def wait_for(condition, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_second_run_waits_for_the_pool_slot_pools_apply_set(
    run: Run, home: Path, tmp_path: Path, closed_port: int
) -> None:
    """Epic's limit (one step at a time per server), applied by the CLI, holds a second run's
    step in Dagster's queue until the first run's step ends."""
    env = {"FHIR_BASE_URL": f"http://127.0.0.1:{closed_port}/fhir", "DAGSTER_HOME": str(home)}
    applied = run("pools", "--apply", "--profile", "epic", env=env)
    assert applied.returncode == 0, applied.stderr
    marks = tmp_path / "marks"
    marks.mkdir()
    spawn = multiprocessing.get_context("spawn")
    first = spawn.Process(target=hold_pool, args=(str(home), "first", str(marks)))
    first.start()
    wait_for((marks / "first.start").exists)
    second = spawn.Process(target=hold_pool, args=(str(home), "second", str(marks)))
    second.start()
    (marks / "second.release").touch()  # the second step ends as soon as it gets to run
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        wait_for(
            lambda: any(
                s.step_key == "second" for s in storage.get_concurrency_info(SERVER).pending_steps
            )
        )
        time.sleep(2)  # queued, not started, while the first run holds the slot
        assert not (marks / "second.start").exists()
    (marks / "first.release").touch()
    first.join(120)
    second.join(120)
    assert (first.exitcode, second.exitcode) == (0, 0)
    ended = float((marks / "first.end").read_text())
    assert float((marks / "second.start").read_text()) >= ended


def test_make_ui_sets_the_sandbox_profiles_limits_but_keeps_a_users(
    sandbox: Sandbox, home: Path
) -> None:
    """``fhir-assets ui`` (``make ui``) applies the defaults to its instance before it starts."""
    from fhir_assets.cli.demo import set_pool_limits

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(SERVER, 4)
    set_pool_limits(sandbox.environment() | {"DAGSTER_HOME": str(home)})
    assert limits(home) == {SERVER: (4, True), BULK: (1, True), "duckdb": (1, True)}
