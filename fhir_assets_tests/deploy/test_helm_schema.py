"""deploy/helm/values.yaml merged onto the chart's defaults as Helm merges them, then validated
with ``jsonschema`` against deploy/helm/values.schema.json (the chart's constraints; the chart's
own values.schema.json works unchanged in its place: see deploy/helm/SCHEMA.md)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

HELM = Path(__file__).resolve().parents[2] / "deploy" / "helm"


def helm_merge(defaults: Any, values: Any) -> Any:
    """Helm's coalescing of user values onto chart defaults: maps merge key by key, any other
    value (a list, a scalar, a map where the default is a scalar) replaces the default whole, and
    null removes a key the defaults have (Helm's coalesceValues deletes it)."""
    if not (isinstance(defaults, dict) and isinstance(values, dict)):
        return copy.deepcopy(values)
    merged = copy.deepcopy(defaults)
    for key, value in values.items():
        if value is None and key in defaults:
            del merged[key]
        else:
            merged[key] = helm_merge(defaults[key], value) if key in defaults else value
    return merged


def remote(uri: str) -> Resource[Any]:
    """The chart's schema points at kubernetesjsonschema.dev for Kubernetes objects: offline,
    those accept anything (Kubernetes itself validates them at install)."""
    return DRAFT7.create_resource({})


def errors(values: dict[str, Any]) -> list[str]:
    schema = orjson.loads((HELM / "values.schema.json").read_bytes())
    defaults = yaml.safe_load((HELM / "chart-defaults.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema, registry=Registry(retrieve=remote))
    found = validator.iter_errors(helm_merge(defaults, values))
    # an anyOf failure (integer or map) says why each alternative failed in its context
    return sorted(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        + "".join(f"; {c.message}" for c in reasons(e))
        for e in found
    )


def reasons(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """Every nested alternative's failure (an anyOf inside an anyOf included)."""
    return [c for sub in error.context or () for c in (sub, *reasons(sub))]


def values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def test_the_helm_values_pass_the_chart_schema() -> None:
    assert errors(values()) == []


def test_the_schema_names_its_chart_version_and_how_to_refresh_it() -> None:
    schema = orjson.loads((HELM / "values.schema.json").read_bytes())
    readme = (HELM / "SCHEMA.md").read_text()
    deploy_readme = (HELM.parent / "README.md").read_text()
    version = "1.13.27"
    assert version in schema["$comment"] and version in readme
    assert f"--version {version}" in deploy_readme  # the version the install pins
    assert "helm pull dagster/dagster" in readme
    # the upstream files it was checked against are named in both
    upstream = "bdb8547fab497826eeec292bc160b549a0a329ef"
    assert upstream in schema["$comment"] and upstream in readme


def set_path(tree: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set ``value`` at a dotted path; a number picks a list item (``deployments.0.env``)."""
    node: Any = tree
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[last] = value
    return tree


DEPLOYMENT = "dagster-user-deployments.deployments.0"
QUEUED = "dagsterDaemon.runCoordinator.config.queuedRunCoordinator"


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        # the case: a map without `started` replaces the schedule default (-1) whole
        ("retention.schedule.purgeAfterDays", {"skipped": 7, "success": 90, "failure": 90},
         "'started' is a required property"),
        ("retention.sensor.purgeAfterDays", {"skipped": 1, "succes": 9},
         "Additional properties are not allowed"),
        ("runLauncher.config.k8sRunLauncher.resource", {}, "Additional properties"),
        ("dagsterDaemon.runMonitoring", "on", "is not of type 'object'"),
        ("dagsterDaemon.runCoordinator.type", "QueueRunCoordinator", "is not one of"),
        ("concurrency.runs.tagConcurrencyLimits", [{"key": "x"}], "'limit' is a required"),
        ("telemetry.enabled", "no", "is not of type 'boolean'"),
        # found by checking the transcription against the chart's schema and sources (SCHEMA.md):
        # the chart forbids unknown webserver keys
        ("dagsterWebserver.replicas", 2, "Additional properties are not allowed"),
        # runRetries is typed (RunRetries): `enabled` required, booleans and integers checked
        ("dagsterDaemon.runRetries.enabled", "yes", "is not of type 'boolean'"),
        ("dagsterDaemon.runRetries.retryOnAssetOrOpFailure", "no", "is not of type 'boolean'"),
        ("dagsterDaemon.runRetries.maxRetries", "2", "is not of type 'integer'"),
        # env given as a map holds strings only; labels and annotations likewise
        ("dagsterDaemon.env", {"FHIR_PARTITIONS": 1}, "1 is not of type 'string'"),
        ("dagsterDaemon.labels", {"team": 7}, "7 is not of type 'string'"),
        (f"{DEPLOYMENT}.env", {"FHIR_WAREHOUSE": True}, "True is not of type 'string'"),
        (f"{DEPLOYMENT}.labels", {"tier": 1}, "1 is not of type 'string'"),
        ("runLauncher.config.k8sRunLauncher.labels", {"app": 1}, "1 is not of type 'string'"),
        # a user deployment runs at least one replica
        (f"{DEPLOYMENT}.replicaCount", 0, "less than or equal to the minimum of 0"),
        (f"{DEPLOYMENT}.includeConfigInLaunchedRuns", {}, "'enabled' is a required property"),
        # the run coordinator's integers are an integer or {env: NAME}, nothing else
        (f"{QUEUED}.dequeueNumWorkers", {"envVar": "N"}, "'env' is a required property"),
        (f"{QUEUED}.maxConcurrentRuns", "10", "is not of type 'integer'"),
        # its tag limits' value is a string or {applyLimitPerUniqueValue: bool}
        (f"{QUEUED}.tagConcurrencyLimits", [{"key": "k", "value": {"perValue": True}, "limit": 1}],
         "'applyLimitPerUniqueValue' is a required property"),
        (f"{QUEUED}.blockOpConcurrencyLimitedRuns", {"enabled": True},
         "'opConcurrencySlotBuffer' is a required property"),
        ("runLauncher.config.k8sRunLauncher.image", {"repository": "r"},
         "'pullPolicy' is a required property"),
        ("global.dagsterInstanceConfigMap", 5, "is not of type 'string'"),
    ],
)  # fmt: skip
def test_the_schema_refuses_what_helm_would_refuse(path: str, value: Any, complaint: str) -> None:
    found = errors(set_path(values(), path, value))
    assert any(complaint in error for error in found), found


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # the chart accepts these (null for its optional keys, keys newer than our values use);
        # the transcription refused them before it was checked against the chart
        ("postgresql.postgresqlScheme", None),
        (f"{DEPLOYMENT}.includeConfigInLaunchedRuns", None),
        (f"{DEPLOYMENT}.envSecrets", None),
        (f"{DEPLOYMENT}.dagsterApiGrpcArgs", None),
        (f"{DEPLOYMENT}.replicaCount", 2),
        ("retention.autoMaterialize", None),
        ("dagsterDaemon.checkDbReadyInitContainer", False),
        ("dagsterDaemon.logFormat", "json"),
        ("dagsterDaemon.runRetries.maxRetries", None),
        ("dagsterWebserver.logFormat", "json"),
        ("dagsterWebserver.env", {"TZ": "UTC"}),
        (f"{QUEUED}.dequeueNumWorkers", {"env": "DEQUEUE_WORKERS"}),
        (f"{QUEUED}.tagConcurrencyLimits",
         [{"key": "fhir/server", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]),
        ("concurrency.runs.tagConcurrencyLimits", [{"key": "k", "value": {"any": 1}, "limit": 1}]),
    ],
)  # fmt: skip
def test_the_schema_accepts_what_the_chart_accepts(path: str, value: Any) -> None:
    assert errors(set_path(values(), path, value)) == []


def test_a_map_merges_onto_a_map_default_and_replaces_a_scalar_one() -> None:
    defaults = {"a": {"x": 1, "y": 2}, "b": -1, "c": [1, 2]}
    merged = helm_merge(defaults, {"a": {"x": 5}, "b": {"z": 1}, "c": [3]})
    assert merged == {"a": {"x": 5, "y": 2}, "b": {"z": 1}, "c": [3]}


def test_null_removes_a_default_key_and_stays_on_a_new_one() -> None:
    merged = helm_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"x": None, "n": None}, "b": None})
    assert merged == {"a": {"y": 2, "n": None}}
    # so nulling a section the chart requires is refused, as `helm install` would
    found = errors(set_path(values(), "dagsterDaemon.runRetries", None))
    assert any("'runRetries' is a required property" in error for error in found), found
