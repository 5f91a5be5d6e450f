"""Policies: a view that opts in must give every column a method, or the code location does not
load; tags, the policy file and the defaults, in that order of precedence."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fhir_assets.assets.defs import build_defs
from fhir_assets.deid.build import DeidContext, deid_select
from fhir_assets.deid.errors import DeidPolicyError
from fhir_assets.deid.keyed import DeidKey
from fhir_assets.deid.policy import build_policies
from fhir_assets.settings import Settings
from fhir_assets.views.library import load_views
from fhir_assets.warehouse.kind_snowflake import DIALECT as SNOWFLAKE
from fhir_assets.warehouse.sql import DUCKDB

KEY = "a-test-key-that-is-long-enough-0123456789"


def column(name: str, path: str, deid: str | None = None, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": name, "path": path, **extra}
    if deid:
        raw["tag"] = [{"name": "deid", "value": deid}]
    return raw


def write_view(folder: Path, name: str, *columns: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "resource": "Observation",
                                "select": [{"column": list(columns)}]}))  # fmt: skip
    return path


def defs_for(tmp_path: Path, policy: dict[str, Any] | None = None, **env: str) -> dg.Definitions:
    environ = {"FHIR_VIEWS_DIR": str(tmp_path / "views"), "FHIR_DEID_KEY": KEY,
               "FHIR_RESOURCE_TYPES": "Patient,Observation", **env}  # fmt: skip
    if policy is not None:
        (tmp_path / "policy.json").write_text(json.dumps({"views": policy}))
        environ["FHIR_DEID_POLICY"] = str(tmp_path / "policy.json")
    return build_defs(Settings.from_environ(environ))


def asset_keys(defs: dg.Definitions) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


def test_policy_view_without_policies_is_refused_when_it_opts_in(tmp_path: Path) -> None:
    write_view(tmp_path / "views", "obs_notes", column("id", "id"), column("note", "note.text"))
    with pytest.raises(DeidPolicyError, match="'obs_notes' column 'id' has no de-identification"):
        defs_for(tmp_path, policy={"obs_notes": {}})


def test_policy_partly_tagged_view_is_refused(tmp_path: Path) -> None:
    write_view(tmp_path / "views", "obs_notes", column("id", "id", "hash"),
               column("note", "note.text"))  # fmt: skip
    with pytest.raises(DeidPolicyError, match="column 'note' has no de-identification method"):
        defs_for(tmp_path)


def test_policy_untagged_user_view_stays_out_and_tagged_one_gets_an_asset(
    tmp_path: Path,
) -> None:
    write_view(tmp_path / "views", "plain", column("id", "id"))
    write_view(tmp_path / "views", "tagged", column("id", "getResourceKey()", "hash"),
               column("status", "status", "keep"))  # fmt: skip
    defs = defs_for(tmp_path)
    keys = asset_keys(defs)
    assert {"fhir_deid/tagged", "fhir_deid/patient", "fhir_deid/observation"} <= keys
    assert "fhir_deid/plain" not in keys
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["fhir_deid", "tagged"])).parent_keys == {
        dg.AssetKey(["fhir", "tagged"])
    }
    sensor = defs.resolve_sensor_def("fhir_deid_refresh_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    off = defs_for(tmp_path, FHIR_DEID_KEY="")
    assert not {k for k in asset_keys(off) if "deid" in k}
    assert "fhir_deid_refresh_sensor" not in {s.name for s in off.sensors or []}


def test_policy_file_overrides_the_tag(tmp_path: Path) -> None:
    write_view(tmp_path / "views", "tagged", column("id", "getResourceKey()", "hash"),
               column("status", "status", "keep"))  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps({"views": {"tagged": {"status": "drop"}}}))
    views = load_views(tmp_path / "views", {"Observation"})
    [policy] = [p for p in build_policies(views, tmp_path / "p.json") if p.view.name == "tagged"]
    assert [(c.name, kind) for c, kind in policy.methods] == [("id", "hash"), ("status", "drop")]
    assert [c.name for c, _ in policy.kept()] == ["id"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([column("id", "id", "scramble")], "unknown method 'scramble'"),
        ([column("id", "id", "hash"), column("when", "issued.toString()", "date")],
         "needs a typed date column"),
        ([column("patient_id", "subject.getReferenceKey()", "keep")], "must be 'hash'"),
        ([column("id", "id", "hash"), column("at", "issued", "date", type="instant")],
         "shifted dates need"),
    ],
)  # fmt: skip
def test_policy_unusable_methods_are_refused(
    tmp_path: Path, columns: list[dict[str, Any]], message: str
) -> None:
    write_view(tmp_path / "views", "mine", *columns)
    with pytest.raises(DeidPolicyError, match=message):
        defs_for(tmp_path)


def test_policy_file_naming_an_unknown_view_or_column_is_refused(tmp_path: Path) -> None:
    write_view(tmp_path / "views", "plain", column("id", "id"))
    with pytest.raises(DeidPolicyError, match="not loaded: \\['nope'\\]"):
        defs_for(tmp_path, policy={"nope": {"id": "hash"}})
    with pytest.raises(DeidPolicyError, match="no columns \\['idd'\\]"):
        defs_for(tmp_path, policy={"plain": {"id": "hash", "idd": "hash"}})


def test_policy_every_default_view_column_has_a_method() -> None:
    policies = build_policies(load_views())
    assert len(policies) == 8
    for policy in policies:
        dropped = {c.name for c, kind in policy.methods if kind == "drop"}
        assert not {"family_name", "given_name", "mrn", "value_string"} & {
            c.name for c, _ in policy.kept()
        }
        assert all(name.endswith("_text") or name in {"family_name", "given_name", "mrn",
                   "code_text", "value_string", "dosage_text", "lot_number"}
                   for name in dropped)  # fmt: skip


@pytest.mark.parametrize("dialect", [DUCKDB, SNOWFLAKE])
def test_policy_sql_holds_neither_the_key_nor_the_hmac_key(dialect: Any) -> None:
    key = DeidKey.from_secret(KEY)
    for policy in build_policies(load_views()):
        sql = deid_select(policy, DeidContext(key, dialect, date(2026, 12, 7)))
        assert KEY not in sql and key.hmac_key.decode() not in sql


def test_policy_key_reaches_dagster_as_an_env_var(tmp_path: Path) -> None:
    environ = {"FHIR_DEID_KEY": KEY, "FHIR_RESOURCE_TYPES": "Patient"}
    defs = build_defs(Settings.from_environ(environ, secrets_from_env=True))
    resource = defs.resources["deid"]
    assert isinstance(resource.key, dg.EnvVar) and resource.key.env_var_name == "FHIR_DEID_KEY"
    assert (
        "deid"
        not in build_defs(Settings.from_environ({"FHIR_RESOURCE_TYPES": "Patient"})).resources
    )


def test_policy_short_key_stops_the_code_location(tmp_path: Path) -> None:
    with pytest.raises(DeidPolicyError, match="at least 32 characters"):
        defs_for(tmp_path / "x", FHIR_DEID_KEY="too-short", FHIR_VIEWS_DIR="")
