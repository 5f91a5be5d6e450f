"""``$extract`` results go stale: a changed response's re-extraction tombstones the earlier
results it no longer gives, a deleted response's results are tombstoned, a failed extraction
tombstones nothing, and a rerun changes nothing. A scripted server on 127.0.0.1 answers
``$extract`` per response version; the warehouses are DuckDB and the Snowflake emulator."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pytest

from fhir_assets.assets.operations import EXTRACT_KEY
from fhir_assets.extraction import (
    EXTRACT_SOURCE,
    extract_all,
    extraction_metadata,
    land_extraction,
    pending,
)
from fhir_assets.fhir.client import FhirClient, redact
from fhir_assets.fhir.operations import OperationLimits
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets.sandbox import Sandbox
from fhir_assets.warehouse.inputs import resource_entries
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.settings import WarehouseSettings, open_warehouse
from fhir_assets.warehouse.tombstones import Tombstone
from fhir_assets_tests.operations.test_extract import extract_defs
from fhir_assets_tests.scripted_server import Reply, scripted_server

from .conftest import materialization, rows

_runs = itertools.count()


def observation(code: str, value: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": {"value": value}}  # fmt: skip


def condition(code: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "code": {"coding": [{"code": code}]},
            "subject": {"reference": "Patient/p1"}}  # fmt: skip


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    entries = [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
               for r in resources]  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@dataclass
class Server:
    """What the scripted server answers to ``QuestionnaireResponse/<id>/$extract``, per id."""

    base: str
    answers: dict[str, Reply] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return redact(self.base)


@pytest.fixture
def server() -> Iterator[Server]:
    answers: dict[str, Reply] = {}

    def script(method: str, path: str) -> Reply:
        rid = path.split("/")[-2]
        return answers.get(rid, Reply(404, {"resourceType": "OperationOutcome"}))

    with scripted_server(script) as (base, _):
        yield Server(base, answers)


def land_responses(wh: WarehouseSettings, server: Server, *versions: tuple[str, int]) -> None:
    """Land QuestionnaireResponse ``id`` at ``version`` (as a sync of the server would)."""
    responses = [
        {"resourceType": "QuestionnaireResponse", "id": rid, "status": "completed",
         "meta": {"versionId": str(v), "lastUpdated": f"2026-03-0{v}T10:00:00Z"}}
        for rid, v in versions
    ]  # fmt: skip
    with open_warehouse(wh) as opened:
        land(opened, "QuestionnaireResponse", resource_entries("test", responses),
             Provenance.now(server.name, f"sync-{next(_runs)}"))  # fmt: skip


def delete_response(wh: WarehouseSettings, server: Server, rid: str, version: int) -> None:
    """Land a tombstone of the response (a Bulk Data deleted file or a history DELETE)."""
    gone = Tombstone(rid, str(version), f"2026-03-0{version}T10:00:00Z")
    with open_warehouse(wh) as opened:
        land(opened, "QuestionnaireResponse", [("deleted", 1, gone)],
             Provenance.now(server.name, f"sync-{next(_runs)}"))  # fmt: skip


def extract_run(wh: WarehouseSettings, server: Server, tmp_path: Path) -> dict[str, Any]:
    """One extract run (the command's and the asset's steps); its metadata."""
    provenance = Provenance.now(server.name + EXTRACT_SOURCE, f"extract-{next(_runs)}")
    folder = tmp_path / f"run-{next(_runs)}"
    folder.mkdir()
    client = FhirClient(server.base, retry=RetryPolicy(attempts=1))
    with open_warehouse(wh) as opened:
        responses = pending(opened, server.name)
        run = extract_all(client, responses, folder, OperationLimits())
        results = land_extraction(opened, run, responses, provenance)
    return extraction_metadata(run, results)


def live(wh: WarehouseSettings, server: Server, table: str = "observation") -> dict[str, Any]:
    return rows(wh, table, server.name + EXTRACT_SOURCE)


def deleted_ids(wh: WarehouseSettings, server: Server, table: str) -> set[str]:
    with open_warehouse(wh, landing=False) as opened:
        found = opened.fetch(
            f"SELECT id FROM fhir_raw.{table} WHERE deleted AND source_server = "  # noqa: S608
            + opened.dialect.literal(server.name + EXTRACT_SOURCE)
        )
    return {str(i) for (i,) in found}


def log_outcomes(wh: WarehouseSettings, rid: str) -> list[str | None]:
    with open_warehouse(wh, landing=False) as opened:
        found = opened.fetch(
            "SELECT outcome FROM fhir_raw._extract_log WHERE response_id = "  # noqa: S608
            f"{opened.dialect.literal(rid)} ORDER BY extracted_at"
        )
    return [o for (o,) in found]


def test_extract_tombstones_the_results_a_changed_response_no_longer_gives(
    warehouse: WarehouseSettings, server: Server, tmp_path: Path
) -> None:
    server.answers["qr1"] = Reply(200, bundle(observation("a", 1), observation("b", 2)))
    server.answers["qr2"] = Reply(200, bundle(observation("a", 5), observation("b", 6)))
    land_responses(warehouse, server, ("qr1", 1), ("qr2", 1))
    first = extract_run(warehouse, server, tmp_path)
    assert set(live(warehouse, server)) == {"qr1-1", "qr1-2", "qr2-1", "qr2-2"}
    assert first["tombstoned"] == 0
    server.answers["qr1"] = Reply(200, bundle(observation("a", 9)))  # v2: one answer left
    land_responses(warehouse, server, ("qr1", 2))
    second = extract_run(warehouse, server, tmp_path)
    now = live(warehouse, server)
    assert set(now) == {"qr1-1", "qr2-1", "qr2-2"}  # the other response's results untouched
    assert second["per_response"] == {"qr1": 1}
    assert second["tombstoned"] == 1 and second["tombstoned_per_type"] == {"Observation": 1}
    assert second["stale_per_response"] == {"qr1": 1}
    assert now["qr1-1"]["valueQuantity"]["value"] == 9
    assert deleted_ids(warehouse, server, "observation") == {"qr1-2"}  # a tombstone row
    again = extract_run(warehouse, server, tmp_path)  # idempotent
    assert again["responses"] == 0 and again["tombstoned"] == 0
    assert set(live(warehouse, server)) == {"qr1-1", "qr2-1", "qr2-2"}


def test_extract_tombstones_results_of_another_type_than_the_new_extraction_gives(
    warehouse: WarehouseSettings, server: Server, tmp_path: Path
) -> None:
    server.answers["qr1"] = Reply(200, bundle(observation("a", 1), condition("x")))
    land_responses(warehouse, server, ("qr1", 1))
    extract_run(warehouse, server, tmp_path)
    assert set(live(warehouse, server, "condition")) == {"qr1-2"}
    server.answers["qr1"] = Reply(200, bundle(observation("a", 1), observation("b", 3)))
    land_responses(warehouse, server, ("qr1", 2))
    second = extract_run(warehouse, server, tmp_path)
    assert live(warehouse, server, "condition") == {}
    assert second["tombstoned_per_type"] == {"Condition": 1}
    assert set(live(warehouse, server)) == {"qr1-1", "qr1-2"}


def test_extract_that_gives_nothing_now_tombstones_every_earlier_result(
    warehouse: WarehouseSettings, server: Server, tmp_path: Path
) -> None:
    server.answers["qr1"] = Reply(200, bundle(observation("a", 1), observation("b", 2)))
    land_responses(warehouse, server, ("qr1", 1))
    extract_run(warehouse, server, tmp_path)
    server.answers["qr1"] = Reply(200, bundle())  # every answer removed
    land_responses(warehouse, server, ("qr1", 2))
    emptied = extract_run(warehouse, server, tmp_path)
    assert live(warehouse, server) == {}
    assert emptied["per_response"] == {"qr1": 0} and emptied["tombstoned"] == 2


@pytest.mark.parametrize("status", [500, 422])
def test_extract_that_fails_tombstones_nothing(
    warehouse: WarehouseSettings, server: Server, tmp_path: Path, status: int
) -> None:
    server.answers["qr1"] = Reply(200, bundle(observation("a", 1), observation("b", 2)))
    land_responses(warehouse, server, ("qr1", 1))
    extract_run(warehouse, server, tmp_path)
    failure = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "broken"}],
    }
    server.answers["qr1"] = Reply(status, failure)  # fmt: skip
    land_responses(warehouse, server, ("qr1", 2))
    failed = extract_run(warehouse, server, tmp_path)
    assert failed["failed_responses"] == 1 and failed["tombstoned"] == 0
    assert set(live(warehouse, server)) == {"qr1-1", "qr1-2"}
    last = log_outcomes(warehouse, "qr1")[-1]
    assert last is not None and "earlier results kept" in last


def test_extract_tombstones_the_results_of_a_deleted_response(
    warehouse: WarehouseSettings, server: Server, tmp_path: Path
) -> None:
    server.answers["qr1"] = Reply(200, bundle(observation("a", 1), condition("x")))
    server.answers["qr2"] = Reply(200, bundle(observation("a", 5)))
    land_responses(warehouse, server, ("qr1", 1), ("qr2", 1))
    extract_run(warehouse, server, tmp_path)
    delete_response(warehouse, server, "qr1", 2)
    run = extract_run(warehouse, server, tmp_path)
    assert set(live(warehouse, server)) == {"qr2-1"} and live(warehouse, server, "condition") == {}
    assert run["responses"] == 0 and run["deleted_responses"] == 1
    assert run["tombstoned"] == 2 and run["stale_per_response"] == {"qr1": 2}
    assert log_outcomes(warehouse, "qr1")[-1] == "deleted on the server: 2 results tombstoned"
    again = extract_run(warehouse, server, tmp_path)  # idempotent: nothing left to tombstone
    assert again["tombstoned"] == 0 and again["deleted_responses"] == 0
    assert len(log_outcomes(warehouse, "qr1")) == 2
    assert set(live(warehouse, server)) == {"qr2-1"}


def drop_smoking_answer(sandbox: Sandbox, rid: str) -> None:
    """The patient's form changes on the server: the smoking item is no longer answered."""
    with sandbox.fhir_client() as client:
        changed = client.get(f"QuestionnaireResponse/{rid}")
        changed["item"] = [i for i in changed["item"] if i["linkId"] != "smoking"]
        client.request("PUT", f"QuestionnaireResponse/{rid}", json=changed,
                       headers={"Content-Type": "application/fhir+json"})  # fmt: skip


def test_extract_asset_tombstones_the_observation_a_changed_answer_no_longer_gives(
    make_sandbox: Callable[..., Sandbox], warehouse: WarehouseSettings
) -> None:
    sandbox = make_sandbox()
    defs, derived = extract_defs(sandbox, warehouse)

    def materialize(instance: dg.DagsterInstance) -> dict[str, Any]:
        run = defs.resolve_job_def("extract").execute_in_process(instance=instance)
        return materialization(run, EXTRACT_KEY)

    with dg.instance_for_test() as instance:
        materialize(instance)
        before = rows(warehouse, "observation", derived)
        drop_smoking_answer(sandbox, "intake-2")
        changed = materialize(instance)
        again = materialize(instance)
    after = rows(warehouse, "observation", derived)
    assert set(before) - set(after) == {"intake-2-2"} and len(after) == 5
    assert changed["per_response"] == {"intake-2": 1}
    assert changed["tombstoned"] == 1 and changed["stale_per_response"] == {"intake-2": 1}
    assert again["tombstoned"] == 0 and again["responses"] == 0


def test_extract_command_counts_the_results_it_tombstones(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox()
    env = {**os.environ, **sandbox.environment(), "FHIR_WAREHOUSE": "duckdb",
           "FHIR_DUCKDB_PATH": str(tmp_path / "wh.duckdb")}  # fmt: skip
    cli = [sys.executable, "-m", "fhir_assets.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    run("sync", "--type", "QuestionnaireResponse")
    run("extract")
    drop_smoking_answer(sandbox, "intake-2")
    with sandbox.fhir_client() as client:
        client.request("DELETE", "QuestionnaireResponse/intake-3")
    run("sync", "--type", "QuestionnaireResponse")
    deleted = tmp_path / "deleted"  # the deletion as a Bulk Data deleted file lands it
    deleted.mkdir()
    entry = {"request": {"method": "DELETE", "url": "QuestionnaireResponse/intake-3"}}
    line = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    (deleted / "QuestionnaireResponse.ndjson").write_bytes(orjson.dumps(line) + b"\n")
    run("land", str(deleted), "--server", redact(sandbox.base_url))
    done = run("extract")
    assert "1 responses extracted, 0 failed" in done.stdout
    assert "3 earlier results tombstoned (1 responses deleted on the server)" in done.stdout
    again = run("extract")
    assert "0 earlier results tombstoned (0 responses deleted on the server)" in again.stdout
