"""Fewer processes per run: a raw table's checks run in its asset's step; DuckDB runs ``sync_all``
in one process, Snowflake fans out one process per type; pools name the FHIR server."""

from __future__ import annotations

import dagster as dg
import pytest

from fhir_assets.assets.defs import build_all_defs, build_defs
from fhir_assets.settings import Settings

TYPES = "Patient,Encounter,Practitioner"
ENV = {
    "FHIR_BASE_URL": "https://fhir.example.org:8443/r4",
    "FHIR_RESOURCE_TYPES": TYPES,
    "FHIR_PARTITIONS": "daily",
}


@pytest.mark.parametrize(
    ("warehouse", "executor"),
    [("duckdb", dg.in_process_executor), ("snowflake", dg.multiprocess_executor)],
)
def test_sync_all_steps_and_executor(warehouse: str, executor: dg.ExecutorDefinition) -> None:
    environ = ENV | {"FHIR_WAREHOUSE": warehouse, "SNOWFLAKE_ACCOUNT": "acme"}
    job = build_defs(Settings.from_environ(environ)).resolve_job_def("sync_all")
    assert job.executor_def.name == executor.name
    steps = [node.name for node in job.graph.nodes]
    # one step per type, its checks inside it, one step for the cross-table references and one
    # for the server's $validate of every table (docs/operations.md)
    assert sorted(steps) == [
        "fhir_raw__encounter",
        "fhir_raw__patient",
        "fhir_raw__practitioner",
        "raw_patient_references",
        "raw_server_validate",
    ]
    patient = job.asset_layer.get(dg.AssetKey(["fhir_raw", "patient"]))
    checks = {key.name for key in patient.check_keys}
    inside = {"source_count", "id_unique", "no_future_last_updated", "invalid_share"}
    assert inside | {"server_validate"} == checks  # server_validate: its own step (above)


def test_views_queue_on_the_duckdb_pool_in_duckdb_mode_only() -> None:
    for warehouse, pool in (("duckdb", "duckdb"), ("snowflake", None)):
        environ = ENV | {"FHIR_WAREHOUSE": warehouse, "SNOWFLAKE_ACCOUNT": "acme"}
        defs = build_defs(Settings.from_environ(environ))
        graph = defs.resolve_asset_graph()
        views = [key for key in graph.get_all_asset_keys() if key.path[0] == "fhir"]
        assert views
        job = defs.resolve_implicit_global_asset_job_def()
        pools = {node.name: node.definition.pool for node in job.graph.nodes}
        assert {pools["__".join(key.path)] for key in views} == {pool}


def test_every_step_that_talks_to_the_server_queues_on_its_pool() -> None:
    environ = ENV | {"FHIR_RESOURCE_TYPES": "Patient,Observation"}
    defs = build_all_defs(Settings.from_environ(environ))
    pools = {
        node.name: node.definition.pool
        for job in ("sync_all", "writeback_example", "bulk_land")
        for node in defs.resolve_job_def(job).graph.nodes
    }
    server = "fhir:fhir.example.org"
    assert pools["fhir_raw__patient"] == pools["fhir_raw__observation"] == server
    assert pools["fhir_writeback__abnormal_count_observation"] == server
    assert pools["raw_server_validate"] == server
    # an export holds its step for hours: its own pool, so it never blocks the REST syncs
    assert pools["fhir_bulk__export"] == "fhir-bulk:fhir.example.org"
    assert pools["raw_patient_references"] == "duckdb"  # only works in the file
    assert pools["fhir_writeback__patient_abnormal_count"] == "duckdb"


def test_defining_the_assets_prints_no_warning() -> None:
    """The beta ``backfill_policy`` warning is silenced at its decorator call only; nothing
    else (no deprecation) is raised while the code location is built."""
    import warnings

    from fhir_assets.settings import Settings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_all_defs(Settings.from_environ({"FHIR_BASE_URL": "http://127.0.0.1:9/fhir"}))
    assert [str(w.message) for w in caught] == []
