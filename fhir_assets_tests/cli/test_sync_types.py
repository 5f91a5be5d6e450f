"""Types beyond the old 23: ``FHIR_RESOURCE_TYPES`` of US Core types builds their raw assets
(without asking the server anything) and ``fhir-assets sync`` lands what the sandbox holds."""

from __future__ import annotations

from pathlib import Path

import duckdb

from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.bulk.bulk_server import BulkServer

from .conftest import Run

US_CORE = ["Goal", "CarePlan", "Device", "Provenance", "QuestionnaireResponse"]


def test_definitions_of_us_core_types_load_without_a_request() -> None:
    from fhir_assets.assets.defs import build_defs
    from fhir_assets.settings import Settings

    with BulkServer() as server:
        env = {"FHIR_BASE_URL": server.url, "FHIR_RESOURCE_TYPES": ",".join(US_CORE)}
        defs = build_defs(Settings.from_environ(env))
        keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
        assert server.seen == []  # definitions never call the server while loading
    assert {f"fhir_raw/{t.lower()}" for t in US_CORE} <= keys
    assert "fhir_raw/encounter" not in keys  # only the types named


def test_sync_of_us_core_types_lands_what_the_sandbox_holds(
    run: Run, sandbox: Sandbox, tmp_path: Path
) -> None:
    expected = sandbox.counts(US_CORE)
    assert all(expected.values()), expected  # the sandbox holds some of each
    env = sandbox.environment() | {"FHIR_RESOURCE_TYPES": ",".join(US_CORE)}
    done = run("sync", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        landed = {
            t: db.execute(f"SELECT COUNT(*) FROM fhir_raw.{t.lower()}").fetchall()[0][0]  # noqa: S608
            for t in US_CORE
        }
        [(quarantined,)] = db.execute("SELECT COUNT(*) FROM fhir_raw._quarantine").fetchall()
    assert landed == expected
    assert quarantined == 0
