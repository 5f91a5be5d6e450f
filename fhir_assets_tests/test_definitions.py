"""The Definitions load, validate with the dagster CLI, and serve in `dagster dev`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from fhir_assets.catalog import CATALOG
from fhir_assets.processes import stop_group
from fhir_assets_tests.ports import unshared_port

REPO = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")
ENV = {"FHIR_BASE_URL": "http://127.0.0.1:9/fhir"}


def dagster_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return (
        os.environ
        | ENV
        | {"DAGSTER_HOME": str(home), "FHIR_DUCKDB_PATH": str(tmp_path / "wh.duckdb")}
    )


def test_definitions_expose_one_raw_asset_per_catalog_type() -> None:
    from fhir_assets.assets.defs import build_defs
    from fhir_assets.settings import Settings

    defs = build_defs(Settings.from_environ(ENV))
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {f"fhir_raw/{spec.table}" for spec in CATALOG} <= keys
    assert "fhir_raw/explanationofbenefit" in keys
    assert defs.resolve_job_def("sync_all") is not None


def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    result = subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=dagster_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_dagster_dev_serves_the_asset_list_over_graphql(tmp_path: Path) -> None:
    port = unshared_port()  # dagster dev binds it only after its imports
    process = subprocess.Popen(
        [
            "env",
            "--default-signal=INT,TERM",
            DAGSTER,
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=dagster_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    query = "{ assetNodes { assetKey { path } } }"
    try:
        nodes = None
        deadline = time.monotonic() + 180
        while nodes is None and time.monotonic() < deadline:
            assert process.poll() is None, "dagster dev exited"
            try:
                answer = requests.post(
                    f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10
                ).json()
                nodes = answer["data"]["assetNodes"]
            except (requests.RequestException, ValueError, KeyError, TypeError):
                time.sleep(1)
        assert nodes is not None, "the UI did not answer GraphQL in time"
        paths = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert {f"fhir_raw/{spec.table}" for spec in CATALOG} <= paths
    finally:
        stop_group(process, timeout=30)
