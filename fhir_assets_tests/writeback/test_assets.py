"""The write-back assets, materialized against a fresh sandbox and a DuckDB file in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.assets.writeback import build_abnormal_count_assets, build_writeback_asset
from fhir_assets.catalog import select
from fhir_assets.fhir import FhirClient
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets.writeback import WritePolicy
from fhir_assets.writeback.example import SCORE_SYSTEM

RAW = build_raw_assets(select("Patient,Observation"))
EXAMPLE = build_abnormal_count_assets(batch_size=20)
WRITEBACK_KEY = dg.AssetKey(["fhir_writeback", "abnormal_count_observation"])


def resources(server: Sandbox, path: Path, scopes: str = "system/*.*") -> dict[str, Any]:
    env = server.environment()
    fhir = {
        "base_url": server.base_url,
        "client_id": env["FHIR_CLIENT_ID"],
        "private_key_path": env["FHIR_PRIVATE_KEY_PATH"],
    }
    return {
        "fhir": FhirServerResource(**fhir, scopes="system/*.read"),
        "fhir_writer": FhirServerResource(**fhir, scopes=scopes),
        "landing": DuckDBWarehouseResource(database=str(path)),
    }


def run(assets: list[Any], res: dict[str, Any], dry_run: bool = False) -> dg.ExecuteInProcessResult:
    config = {
        "ops": {"fhir_writeback__abnormal_count_observation": {"config": {"dry_run": dry_run}}}
    }
    return dg.materialize(assets, resources=res, run_config=config, raise_on_error=False)


def writeback_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == WRITEBACK_KEY]
    metadata = event.materialization.metadata
    return {k: v.value for k, v in metadata.items()}


def scores_on_server(client: FhirClient) -> list[dict[str, Any]]:
    return list(client.search("Observation", {"identifier": f"{SCORE_SYSTEM}|", "_count": 500}))


@pytest.fixture
def landed(make_sandbox: Any, tmp_path: Path) -> tuple[Sandbox, Path]:
    """A fresh sandbox whose patients and observations are landed in a DuckDB file."""
    server = make_sandbox()
    path = tmp_path / "warehouse.duckdb"
    result = dg.materialize(RAW, resources=resources(server, path))
    assert result.success
    return server, path


def test_writeback_asset_twice_creates_nothing_the_second_time(
    landed: tuple[Sandbox, Path],
) -> None:
    server, path = landed
    first = run(EXAMPLE, resources(server, path))
    second = run(EXAMPLE, resources(server, path))

    assert first.success and second.success
    one, two = writeback_metadata(first), writeback_metadata(second)
    with duckdb.connect(str(path), read_only=True) as con:
        patients = con.execute("select count(*) from fhir_raw.patient").fetchone()[0]
        scored = con.execute(
            "select count(*) from fhir_writeback.patient_abnormal_count where abnormal_count > 0"
        ).fetchone()[0]
        audited = con.execute(
            "select count(*), count(distinct run_id) from fhir_audit.writes "
            "where outcome <> 'sending'"
        ).fetchone()
    assert (one["created"], one["failed"], one["dry_run"]) == (patients, 0, False)
    assert one["batches"] == -(-patients // 20)
    assert (two["created"], two["updated"], two["unchanged"]) == (0, 0, patients)
    assert scored > 0
    assert audited == (patients, 1)  # the second run had nothing to send
    with server.fhir_client() as client:
        stored = scores_on_server(client)
    assert len(stored) == patients
    assert len({s["identifier"][0]["value"] for s in stored}) == patients


def test_writeback_asset_dry_run_diffs_and_writes_nothing(landed: tuple[Sandbox, Path]) -> None:
    server, path = landed
    result = run(EXAMPLE, resources(server, path), dry_run=True)

    assert result.success
    metadata = writeback_metadata(result)
    assert metadata["dry_run"] is True
    assert metadata["created"] > 0 and metadata["failed"] == 0
    with server.fhir_client() as client:
        assert scores_on_server(client) == []


def test_writeback_asset_refuses_to_run_without_write_scope(landed: tuple[Sandbox, Path]) -> None:
    server, path = landed

    result = run(EXAMPLE, resources(server, path, scopes="system/*.read"))

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "needs a write scope" in str(failure.event_specific_data)
    with server.fhir_client() as client:
        assert scores_on_server(client) == []


def test_writeback_asset_fails_the_run_when_rows_cannot_be_written(
    landed: tuple[Sandbox, Path],
) -> None:
    server, path = landed

    def broken(row: dict[str, Any]) -> dict[str, Any]:
        if row["abnormal_count"] > 0:
            raise KeyError("no mapping")
        return {
            "resourceType": "Observation",
            "identifier": [{"system": "urn:test", "value": row["patient_id"]}],
            "status": "final",
            "code": {"text": "x"},
        }

    asset = build_writeback_asset(
        "abnormal_count_observation",
        ["fhir_writeback", "patient_abnormal_count"],
        "Observation",
        broken,
        500,
        policy=WritePolicy("urn:test"),
    )
    result = run([EXAMPLE[0], asset], resources(server, path))

    assert not result.success
    with duckdb.connect(str(path), read_only=True) as con:
        zero = con.execute(
            "select count(*) from fhir_writeback.patient_abnormal_count where abnormal_count = 0"
        ).fetchone()[0]
        created = con.execute(
            "select count(*) from fhir_audit.writes where outcome = 'created'"
        ).fetchone()[0]
    assert created == zero  # the mappable rows were still written


@pytest.mark.parametrize(
    ("types", "raw"), [("Patient,Observation", {"patient", "observation"}), ("Encounter", set())]
)
def test_definitions_include_the_writeback_example(types: str, raw: set[str]) -> None:
    from fhir_assets.assets.defs import build_defs
    from fhir_assets.settings import Settings

    defs = build_defs(Settings.from_environ({"FHIR_RESOURCE_TYPES": types}))
    dg.Definitions.validate_loadable(defs)

    selected = defs.resolve_job_def("writeback_example").asset_layer.selected_asset_keys
    assert {WRITEBACK_KEY, dg.AssetKey(["fhir_writeback", "patient_abnormal_count"])} <= selected
    assert {k.path[1] for k in selected if k.path[0] == "fhir_raw"} == raw


def test_abnormal_count_scores_only_the_server_written_back_to(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """Rows of another server (an earlier sandbox port: the same patient ids) stay out of the
    score, so each patient is written once ("the identifier appears twice" before)."""
    path = tmp_path / "warehouse.duckdb"
    earlier, current = make_sandbox(), make_sandbox()
    for server in (earlier, current):
        assert dg.materialize(RAW, resources=resources(server, path)).success
    result = run(EXAMPLE, resources(current, path))
    assert result.success
    patients = current.counts(["Patient"])["Patient"]
    metadata = writeback_metadata(result)
    assert (metadata["created"], metadata["failed"], metadata["resources"]) == (
        patients,
        0,
        patients,
    )
    with earlier.fhir_client() as client:
        assert scores_on_server(client) == []
