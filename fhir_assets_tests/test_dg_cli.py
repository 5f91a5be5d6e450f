"""The current Dagster CLI works on the project as the README documents it: `dg launch` finds
the code location through [tool.dg] in pyproject.toml, lands a partition and a partition range,
and prints no SupersessionWarning (nor any other warning)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from fhir_assets.sandbox import Sandbox

from .sync.test_partitioned_assets import data_day

REPO = Path(__file__).resolve().parent.parent
DG = str(Path(sys.executable).parent / "dg")
DOCUMENTED = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def dg(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DG, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def environment(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    start = data_day(sandbox) - timedelta(days=1)
    return (
        os.environ
        | sandbox.environment()
        | {
            "DAGSTER_HOME": str(home),
            "FHIR_DUCKDB_PATH": str(tmp_path / "wh.duckdb"),
            "FHIR_RESOURCE_TYPES": "Patient",
            "FHIR_PARTITIONS": "daily",
            "FHIR_SYNC_START": start.date().isoformat(),
            "FHIR_SYNC_LAG_MINUTES": "0",
        }
    )


@pytest.mark.slow
def test_dg_launch_lands_a_partition_range_without_warnings(
    sandbox: Sandbox, environment: dict[str, str], tmp_path: Path
) -> None:
    first = environment["FHIR_SYNC_START"]
    last = data_day(sandbox).date().isoformat()
    span = f"{first}...{last}"
    ranged = dg(["launch", "--assets", "fhir_raw/patient", "--partition-range", span], environment)
    assert ranged.returncode == 0, ranged.stderr[-3000:]
    single = dg(["launch", "--assets", "fhir_raw/patient", "--partition", last], environment)
    assert single.returncode == 0, single.stderr[-3000:]
    for result in (ranged, single):
        output = result.stdout + result.stderr
        assert "SupersessionWarning" not in output and "Warning" not in output, output[-3000:]
    with duckdb.connect(environment["FHIR_DUCKDB_PATH"], read_only=True) as con:
        [(rows,)] = con.execute("select count(*) from fhir_raw.patient").fetchall()
    assert rows == sandbox.counts(["Patient"])["Patient"]


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda p: p.name)
def test_the_docs_use_dg_not_the_superseded_commands(path: Path) -> None:
    text = path.read_text()
    for superseded in ("dagster dev", "dagster asset materialize", "dagster job launch"):
        assert superseded not in text, superseded
