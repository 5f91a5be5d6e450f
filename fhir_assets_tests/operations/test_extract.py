"""The ``$extract`` asset and ``fhir-assets extract`` against the sandbox's definition-based
``QuestionnaireResponse/$extract``: extracted Observations land tagged with their response; a
response the server cannot extract is logged with its outcome; only changed responses rerun."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from fhir_assets.assets.defs import build_defs
from fhir_assets.assets.operations import EXTRACT_KEY
from fhir_assets.extraction import EXTRACT_SOURCE, EXTRACTED_FROM
from fhir_assets.fhir.client import redact
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import sandbox_settings
from fhir_assets.warehouse.settings import WarehouseSettings, open_warehouse

from .conftest import materialization, rows

RESPONSES = dg.AssetKey(["fhir_raw", "questionnaireresponse"])


def sources(observations: dict[str, dict]) -> dict[str, str]:
    """Observation id -> the response its tag names (and its derivedFrom agrees)."""
    found = {}
    for oid, resource in observations.items():
        [tag] = [t for t in resource["meta"]["tag"] if t["system"] == EXTRACTED_FROM]
        assert resource["derivedFrom"] == [{"reference": tag["code"]}]
        found[oid] = tag["code"]
    return found


def extract_defs(sandbox: Sandbox, warehouse: WarehouseSettings) -> tuple[dg.Definitions, str]:
    """The definitions on the sandbox with a job ``extract`` (the responses, then their
    extraction), and the ``source_server`` of what it extracts."""
    settings = sandbox_settings(sandbox, warehouse, FHIR_RESOURCE_TYPES="QuestionnaireResponse",
                                FHIR_PARTITIONS="none", FHIR_VALIDATE_SAMPLE="0")  # fmt: skip
    job = dg.define_asset_job("extract", selection=[RESPONSES, EXTRACT_KEY])
    defs = dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[job]))
    return defs, redact(sandbox.base_url) + EXTRACT_SOURCE


def test_extract_asset_lands_observations_linked_to_their_response(
    make_sandbox: Callable[..., Sandbox], warehouse: WarehouseSettings
) -> None:
    sandbox = make_sandbox()
    defs, derived = extract_defs(sandbox, warehouse)
    with dg.instance_for_test() as instance:
        run = defs.resolve_job_def("extract").execute_in_process(instance=instance)
        first = materialization(run, EXTRACT_KEY)
        observations = rows(warehouse, "observation", derived)
        again = materialization(
            defs.resolve_job_def("extract").execute_in_process(instance=instance), EXTRACT_KEY
        )
        with sandbox.fhir_client() as client:  # the patient's answer changes
            changed = client.get("QuestionnaireResponse/intake-2")
            changed["item"][0]["answer"] = [{"valueDecimal": 99.5}]
            client.request("PUT", "QuestionnaireResponse/intake-2", json=changed,
                           headers={"Content-Type": "application/fhir+json"})  # fmt: skip
        third = materialization(
            defs.resolve_job_def("extract").execute_in_process(instance=instance), EXTRACT_KEY
        )
    expected = {f"QuestionnaireResponse/intake-{n}" for n in (1, 2, 3)}
    linked = sources(observations)
    assert len(observations) == 6 and set(linked.values()) == expected
    assert first["per_response"] == {"intake-1": 2, "intake-2": 2, "intake-3": 2}
    assert first["failed_responses"] == 1 and "intake-4" in first["failures"]
    assert "Questionnaire" in first["failures"]["intake-4"]
    assert first["per_type"]["Observation"]["landed"] == 6
    assert again["responses"] == 0 and again["resources"] == 0
    assert third["per_response"] == {"intake-2": 2}
    assert third["per_type"]["Observation"]["updated"] == 2
    weights = [
        r["valueQuantity"]["value"]
        for r in rows(warehouse, "observation", derived).values()
        if r["derivedFrom"][0]["reference"].endswith("intake-2") and "valueQuantity" in r
    ]
    assert weights == [99.5]
    assert rows(warehouse, "observation", redact(sandbox.base_url)) == {}  # server rows apart
    with open_warehouse(warehouse, landing=False) as opened:
        [(logged,)] = opened.fetch("SELECT COUNT(*) FROM fhir_raw._extract_log")
    assert logged == 5  # four responses, then intake-2 again


def test_extract_command_reports_the_response_it_cannot_extract(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **sandbox.environment(),
        "FHIR_WAREHOUSE": "duckdb",
        "FHIR_DUCKDB_PATH": str(tmp_path / "wh.duckdb"),
    }
    cli = [sys.executable, "-m", "fhir_assets.cli"]
    synced = subprocess.run([*cli, "sync", "--type", "QuestionnaireResponse"], env=env)
    assert synced.returncode == 0
    done = subprocess.run([*cli, "extract"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "3 responses extracted, 1 failed" in done.stdout
    assert "QuestionnaireResponse/intake-4: not extracted" in done.stderr
    again = subprocess.run([*cli, "extract"], env=env, capture_output=True, text=True)
    assert "0 responses extracted, 0 failed" in again.stdout
    forced = subprocess.run([*cli, "extract", "--since", "2000-01-01"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert "3 responses extracted, 1 failed" in forced.stdout
