"""deploy/helm/values.yaml: parses, sets only keys Dagster's chart documents, and configures the
instance as deploy/dagster.yaml does (what the local production run proves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHART_KEYS = Path(__file__).with_name("helm_chart_keys.yaml")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def unknown_keys(values: Any, chart: Any, path: str = "") -> list[str]:
    """Key paths of ``values`` the chart's key tree does not have.

    In the tree, ``{}`` and ``[]`` accept anything below them, ``None`` a scalar, ``name[]`` a
    list whose items follow the subtree.
    """
    if chart in ({}, []):
        return []
    if not isinstance(values, dict):
        return [] if chart is None else [path]  # a scalar where the chart has sub-keys
    if not isinstance(chart, dict):
        return [path]  # a mapping where the chart expects a scalar
    found = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if f"{key}[]" in chart and isinstance(value, list):
            for item in value:
                found += unknown_keys(item, chart[f"{key}[]"], f"{where}[]")
        elif key in chart:
            found += unknown_keys(value, chart[key], where)
        else:
            found.append(where)
    return found


def test_every_value_key_exists_in_the_chart() -> None:
    assert unknown_keys(load(DEPLOY / "helm" / "values.yaml"), load(CHART_KEYS)) == []


@pytest.mark.parametrize(
    ("values", "unknown"),
    [
        ({"dagsterDaemon": {"runRetries": {"maxRetrys": 2}}},
         ["dagsterDaemon.runRetries.maxRetrys"]),
        ({"runLauncher": {"config": "K8sRunLauncher"}}, ["runLauncher.config"]),
        ({"dagster-user-deployments": {"deployments": [{"replicaCount": 2}]}},
         ["dagster-user-deployments.deployments[].replicaCount"]),
        ({"telemetry": {"enabled": {"nested": 1}}}, ["telemetry.enabled"]),
        ({"dagsterWebserver": {"resources": {"requests": {"cpu": 1}}}}, []),
    ],
)  # fmt: skip
def test_the_key_check_catches_misspelled_and_unsupported_keys(
    values: dict[str, Any], unknown: list[str]
) -> None:
    assert unknown_keys(values, load(CHART_KEYS)) == unknown


def test_helm_instance_matches_the_production_dagster_yaml() -> None:
    helm, instance = load(DEPLOY / "helm" / "values.yaml"), load(DEPLOY / "dagster.yaml")
    pools, runs = helm["concurrency"]["pools"], helm["concurrency"]["runs"]
    assert pools == {
        "defaultLimit": instance["concurrency"]["pools"]["default_limit"],
        "granularity": instance["concurrency"]["pools"]["granularity"],
        "opGranularityRunBuffer": instance["concurrency"]["pools"]["op_granularity_run_buffer"],
    }
    # the same one-at-a-time limits; only the totals differ (no single DuckDB writer on k8s)
    singles = [t for t in runs["tagConcurrencyLimits"] if "value" in t]
    local = [t for t in instance["concurrency"]["runs"]["tag_concurrency_limits"] if "value" in t]
    assert singles == local
    retries = helm["dagsterDaemon"]["runRetries"]
    assert (retries["maxRetries"], retries["retryOnAssetOrOpFailure"]) == (
        instance["run_retries"]["max_retries"],
        instance["run_retries"]["retry_on_asset_or_op_failure"],
    )
    for kind in ("schedule", "sensor"):
        assert (
            helm["retention"][kind]["purgeAfterDays"]
            == (instance["retention"][kind]["purge_after_days"])
        )
    assert helm["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert (
        helm["postgresql"]["postgresqlScheme"]
        == (instance["storage"]["postgres"]["postgres_db"]["scheme"])
    )


def test_secrets_reach_the_code_only_through_kubernetes_secrets() -> None:
    deployment = load(DEPLOY / "helm" / "values.yaml")["dagster-user-deployments"]["deployments"][0]
    plain = {entry["name"] for entry in deployment["env"]}
    for secret in ("FHIR_CLIENT_ID", "FHIR_PRIVATE_KEY", "FHIR_CLIENT_SECRET",
                   "SNOWFLAKE_PASSWORD", "SNOWFLAKE_USER", "SNOWFLAKE_ACCOUNT"):  # fmt: skip
        assert secret not in plain
    assert deployment["envSecrets"] == [{"name": "fhir-assets-env"}]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "fhir_assets.definitions"]
