"""``fhir-assets sync`` against the sandbox: the server's counts land, a rerun lands nothing new."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from fhir_assets.sandbox import Sandbox

from .conftest import Run

TYPES = ["Patient", "Encounter"]


def _table(stdout: str) -> dict[str, list[str]]:
    """{type: [window start, window end, seen, landed, updated, unchanged, quarantined]}."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        name, *rest = line.split()
        rows[name] = [rest[0].strip("[,"), rest[1].rstrip(")"), *rest[2:]]
    return rows


def test_sync_lands_the_servers_counts_and_a_rerun_nothing_new(
    run: Run, sandbox: Sandbox, tmp_path: Path
) -> None:
    expected = sandbox.counts(TYPES)
    first = run("sync", "--type", ",".join(TYPES), env=sandbox.environment())
    assert first.returncode == 0, first.stderr
    rows = _table(first.stdout)
    assert {t: int(rows[t][3]) for t in TYPES} == expected
    assert rows["Patient"][0] == "1970-01-01T00:00:00.000Z"  # empty table: everything
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        for resource_type, count in expected.items():
            table = f"fhir_raw.{resource_type.lower()}"
            [(rows_landed, servers)] = db.execute(
                f"SELECT COUNT(*), LIST(DISTINCT source_server) FROM {table}"  # noqa: S608
            ).fetchall()
            assert rows_landed == count
            assert servers == [sandbox.base_url]

    again = run("sync", "--type", "Patient", "--type", "Encounter", env=sandbox.environment())
    assert again.returncode == 0, again.stderr
    rows = _table(again.stdout)
    for resource_type in TYPES:
        start, _, seen, landed, updated, unchanged, _ = rows[resource_type]
        assert start != "1970-01-01T00:00:00.000Z"  # from the newest lastUpdated landed
        assert (landed, updated) == ("0", "0")
        assert int(unchanged) == int(seen) < expected[resource_type]


def test_sync_window_bounds_what_is_searched(run: Run, sandbox: Sandbox) -> None:
    done = run("sync", "--type", "Patient", "--until", "2000-01-01", env=sandbox.environment())
    assert done.returncode == 0, done.stderr
    start, end, seen, *_ = _table(done.stdout)["Patient"]
    assert (start, end, seen) == ("1970-01-01T00:00:00.000Z", "2000-01-01T00:00:00.000Z", "0")
    bad = run("sync", "--type", "Patient", "--since", "yesterday", env=sandbox.environment())
    assert bad.returncode == 1
    assert "error: --since 'yesterday' is not an ISO 8601 date or instant" in bad.stderr


def test_sync_and_doctor_run_without_importing_dagster(sandbox: Sandbox, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from fhir_assets.cli import app\n"
        "for args in (['sync', '--type', 'Patient'], ['doctor']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('dagster', 'fhir_assets.definitions', 'fhir_assets.resources')"
        " if m in sys.modules))\n"
    )
    env = os.environ | sandbox.environment()
    env |= {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb"), "FHIR_RESOURCE_TYPES": "Patient"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_sync_into_the_snowflake_emulator_continues_from_its_high_water_mark(
    run: Run, sandbox: Sandbox
) -> None:
    from fhir_assets_tests.snowflake_emulator import (
        apply_bootstrap,
        emulator_environment,
        emulator_settings,
    )

    with emulator_settings(database="FHIR_ASSETS") as snowflake:
        apply_bootstrap(snowflake)
        env = sandbox.environment() | emulator_environment(snowflake)
        first = run("sync", "--type", "Patient", env=env)
        again = run("sync", "--type", "Patient", env=env)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    expected = sandbox.counts(["Patient"])["Patient"]
    assert int(_table(first.stdout)["Patient"][3]) == expected
    start, _, seen, landed, updated, unchanged, _ = _table(again.stdout)["Patient"]
    assert start != "1970-01-01T00:00:00.000Z"
    assert (landed, updated) == ("0", "0")
    assert int(unchanged) == int(seen) < expected
