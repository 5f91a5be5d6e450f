"""deploy/snowflake/spcs/: the service specifications parse, agree with setup.sql and with the
Helm deployment, and configure only variables the code and deploy/dagster.yaml read.

Paper-level: nothing here runs Snowpark Container Services; these checks keep the files
consistent with each other and with the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from fhir_assets.settings import variables

REPO = Path(__file__).resolve().parents[2]
SPCS = REPO / "deploy" / "snowflake" / "spcs"


def spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((SPCS / name).read_text())["spec"]  # type: ignore[no-any-return]


def containers() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in spec("dagster-service.yaml")["containers"]}


def test_webserver_daemon_and_code_server_run_from_the_helm_image() -> None:
    helm = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    image = helm["dagster-user-deployments"]["deployments"][0]["image"]
    found = containers()
    assert set(found) == {"webserver", "daemon", "code-server"}
    assert {c["image"] for c in found.values()} == {
        f"/fhir_assets/dagster/images/fhir-assets:{image['tag']}"
    }
    assert found["code-server"]["command"][:5] == ["dagster", "api", "grpc", "-m",
                                                   "fhir_assets.definitions"]  # fmt: skip
    workspace = yaml.safe_load((SPCS / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert str(workspace["port"]) in found["code-server"]["command"]


def test_every_variable_is_one_the_code_or_the_instance_reads() -> None:
    settings = {name for name, *_ in variables()}  # what definitions.py reads, via Settings
    instance = (REPO / "deploy" / "dagster.yaml").read_text()
    for container in containers().values():
        names = set(container["env"]) | {s["envVarName"] for s in container["secrets"]
                                          if "envVarName" in s}  # fmt: skip
        unread = [n for n in names if n not in settings and n not in instance]
        assert not unread, container["name"]


def test_secrets_come_from_snowflake_secrets_that_setup_sql_creates() -> None:
    sql = (SPCS / "setup.sql").read_text()
    created = {m.lower() for m in re.findall(r"CREATE OR REPLACE SECRET (\S+)", sql)}
    used = {s["snowflakeSecret"]["objectName"].lower()
            for c in [*containers().values(), *spec("postgres-service.yaml")["containers"]]
            for s in c["secrets"]}  # fmt: skip
    assert used == created
    for container in containers().values():
        env = container["env"]
        assert not {"FHIR_CLIENT_ID", "FHIR_PRIVATE_KEY", "DAGSTER_PG_PASSWORD"} & set(env)


def test_egress_is_the_fhir_host_and_the_specs_are_the_ones_setup_sql_loads() -> None:
    sql = (SPCS / "setup.sql").read_text()
    host = urlsplit(containers()["code-server"]["env"]["FHIR_BASE_URL"]).hostname
    rules = re.findall(r"VALUE_LIST = \('([^']+)'\)", sql)
    assert f"{host}:443" in rules
    assert all(r == f"{host}:443" or r.endswith(".snowflakecomputing.com:443") for r in rules)
    # the key-pair login goes where the egress rule lets it: SPCS's injected internal host and
    # account are replaced in every container
    snowflake = [r for r in rules if r.endswith(".snowflakecomputing.com:443")]
    for container in containers().values():
        env = container["env"]
        assert [f"{env['SNOWFLAKE_HOST']}:443"] == snowflake, container["name"]
        assert env["SNOWFLAKE_HOST"] == f"{env['SNOWFLAKE_ACCOUNT']}.snowflakecomputing.com"
    for name in re.findall(r"SPECIFICATION_FILE = '([^']+)'", sql):
        assert (SPCS / name).exists(), name
