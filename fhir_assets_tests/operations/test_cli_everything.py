"""``fhir-assets everything`` against the sandbox: --type narrows what lands (the sandbox ignores
``_type``, so the command filters and says so), a bad type or a missing Group is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fhir_assets.fhir.client import redact
from fhir_assets.sandbox import Sandbox
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings

from .conftest import rows


def run(sandbox: Sandbox, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **sandbox.environment(), "FHIR_WAREHOUSE": "duckdb",
           "FHIR_DUCKDB_PATH": str(tmp_path / "wh.duckdb")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "fhir_assets.cli", "everything", *args],
        env=env, capture_output=True, text=True,
    )  # fmt: skip


def test_everything_command_lands_only_the_types_asked(sandbox: Sandbox, tmp_path: Path) -> None:
    with sandbox.fhir_client() as client:
        patient = sorted(r["id"] for r in client.search("Patient"))[0]
        expected = {
            r["id"] for r in client.search("Observation", {"subject": f"Patient/{patient}"})
        }
    done = run(sandbox, tmp_path, "--patient", patient, "--type", "Observation")
    assert done.returncode == 0, done.stderr
    assert "not in --type: not landed" in done.stdout
    warehouse = WarehouseSettings("duckdb", duckdb=DuckDBSettings(path=str(tmp_path / "wh.duckdb")))
    server = redact(sandbox.base_url)
    assert set(rows(warehouse, "observation", server)) == expected
    assert rows(warehouse, "patient", server) == {}


def test_everything_command_errors_name_the_problem(sandbox: Sandbox, tmp_path: Path) -> None:
    bad_type = run(sandbox, tmp_path, "--patient", "p", "--type", "Observaton")
    assert bad_type.returncode == 1 and "'Observaton'" in bad_type.stderr
    no_group = run(sandbox, tmp_path, "--group", "no-such-group")
    assert (
        no_group.returncode == 1 and "Group/no-such-group is not on the server" in no_group.stderr
    )
    neither = run(sandbox, tmp_path)
    assert neither.returncode == 1 and "--patient" in neither.stderr
