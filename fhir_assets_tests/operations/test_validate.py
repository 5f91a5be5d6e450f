"""The ``server_validate`` check and ``fhir-assets validate`` against the sandbox's ``$validate``,
with a deliberately broken Patient among the newest landed ones."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from fhir_assets.assets.defs import build_defs
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import sandbox_settings
from fhir_assets.warehouse.settings import WarehouseSettings

PATIENT = dg.AssetKey(["fhir_raw", "patient"])
# A value a server may echo in its diagnostics: it must never reach the check's metadata.
SECRET_VALUE = "Zebediah-1962"


def break_a_patient(sandbox: Sandbox) -> None:
    """PUT a Patient the R4 model refuses (sekmet stores it: inbound validation is off)."""
    broken = {"resourceType": "Patient", "id": "broken-1", "birthDate": SECRET_VALUE,
              "name": [{"family": SECRET_VALUE}]}  # fmt: skip
    with sandbox.fhir_client() as client:
        client.request("PUT", "Patient/broken-1", json=broken,
                       headers={"Content-Type": "application/fhir+json"})  # fmt: skip


def test_validate_check_counts_the_servers_error_and_fails_at_warn(
    make_sandbox: Callable[..., Sandbox], warehouse: WarehouseSettings
) -> None:
    sandbox = make_sandbox()
    break_a_patient(sandbox)
    settings = sandbox_settings(sandbox, warehouse, FHIR_RESOURCE_TYPES="Patient",
                                FHIR_PARTITIONS="none", FHIR_VALIDATE_SAMPLE="5")  # fmt: skip
    job = dg.define_asset_job("patients", selection=dg.AssetSelection.assets(PATIENT))
    defs = dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("patients").execute_in_process(instance=instance)
    assert result.success  # a WARN check does not fail the run
    [check] = [
        e for e in result.get_asset_check_evaluations()
        if e.check_name == "server_validate" and e.asset_key == PATIENT
    ]  # fmt: skip
    metadata = {k: v.value for k, v in check.metadata.items()}
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    assert metadata["sampled"] == 5 and metadata["invalid_resources"] == 1
    assert metadata["issues_error"] >= 1
    assert "birthDate" in metadata["top_messages"]
    assert SECRET_VALUE not in str(metadata)


def test_validate_check_passes_on_valid_resources(
    sandbox: Sandbox, warehouse: WarehouseSettings
) -> None:
    settings = sandbox_settings(sandbox, warehouse, FHIR_RESOURCE_TYPES="Patient",
                                FHIR_PARTITIONS="none", FHIR_VALIDATE_SAMPLE="3")  # fmt: skip
    with dg.instance_for_test() as instance:
        result = (
            build_defs(settings).resolve_job_def("sync_all").execute_in_process(instance=instance)
        )
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "server_validate"]
    assert check.passed is True
    assert check.metadata["sampled"].value == 3 and check.metadata["issues_error"].value == 0


def test_validate_sample_zero_builds_no_check(
    sandbox: Sandbox, warehouse: WarehouseSettings
) -> None:
    settings = sandbox_settings(sandbox, warehouse, FHIR_VALIDATE_SAMPLE="0")
    checks = build_defs(settings).resolve_asset_graph().asset_check_keys
    assert not [key for key in checks if key.name == "server_validate"]


def test_validate_command_exits_1_on_an_error(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox()
    env = {
        **os.environ,
        **sandbox.environment(),
        "FHIR_WAREHOUSE": "duckdb",
        "FHIR_DUCKDB_PATH": str(tmp_path / "wh.duckdb"),
    }
    cli = [sys.executable, "-m", "fhir_assets.cli"]
    synced = subprocess.run([*cli, "sync", "--type", "Patient"], env=env, capture_output=True)
    assert synced.returncode == 0, synced.stderr
    clean = subprocess.run([*cli, "validate", "--type", "Patient", "--sample", "3"], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    assert "sampled: 3" in clean.stdout and "issues_error: 0" in clean.stdout
    break_a_patient(sandbox)
    assert subprocess.run([*cli, "sync", "--type", "Patient"], env=env).returncode == 0
    broken = subprocess.run([*cli, "validate", "--type", "Patient", "--sample", "3"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert broken.returncode == 1
    assert "sampled: 3" in broken.stdout and "invalid_resources: 1" in broken.stdout
    assert "issues_error: 0" not in broken.stdout and SECRET_VALUE not in broken.stdout


def test_a_server_without_validate_fails_the_check_with_its_answer_not_the_step() -> None:
    from fhir_assets.assets.operations import validate_result
    from fhir_assets.catalog import BY_TYPE
    from fhir_assets.fhir.client import FhirClient
    from fhir_assets.fhir.retry import RetryPolicy
    from fhir_assets_tests.scripted_server import Reply, scripted_server

    issue = {"severity": "error", "code": "not-supported", "diagnostics": "Unknown operation"}
    outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
    with scripted_server(lambda m, p: Reply(404, outcome)) as (base, _):
        client = FhirClient(base, retry=RetryPolicy(attempts=1))
        result = validate_result(client, BY_TYPE["Patient"], [{"resourceType": "Patient"}], None)
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.WARN
    assert "does not support Patient/$validate" in str(result.description)
    assert "Unknown operation" in str(result.description)
