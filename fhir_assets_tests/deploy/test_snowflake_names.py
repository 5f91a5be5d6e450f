"""Every Snowflake object name in the deploy files and docs comes from deploy/snowflake/names.yaml:
what bootstrap.sql creates is what setup.sql grants, the services and Helm values connect as, and
the docs tell an administrator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAMES: dict[str, Any] = yaml.safe_load((DEPLOY / "snowflake" / "names.yaml").read_text())
SQL = [DEPLOY / "snowflake" / "bootstrap.sql", DEPLOY / "snowflake" / "spcs" / "setup.sql"]
FILES = [
    *SQL,
    DEPLOY / "helm" / "values.yaml",
    DEPLOY / "snowflake" / "spcs" / "dagster-service.yaml",
    DEPLOY / "snowflake" / "spcs" / "postgres-service.yaml",
    DEPLOY / "README.md",
    ROOT / "docs" / "landing.md",
    ROOT / "docs" / "deploy.md",
    ROOT / "README.md",
]
# Snowflake's own roles, which the setup may use or grant to
SYSTEM_ROLES = {"ACCOUNTADMIN", "SYSADMIN", "SECURITYADMIN", "USERADMIN", "PUBLIC"}
# (kind, what names an object of that kind in SQL)
REFERENCES = [
    ("role", r"(?<!SERVICE )\bROLE (?:IF NOT EXISTS )?([A-Z_][A-Z0-9_]*)"),
    ("warehouse", r"\bWAREHOUSE (?:IF NOT EXISTS )?([A-Z_][A-Z0-9_]*)"),
    ("warehouse", r"\bWAREHOUSE = ([A-Z_][A-Z0-9_]*)"),
    ("database", r"\bDATABASE (?:IF NOT EXISTS )?([A-Z_][A-Z0-9_]*)"),
    ("user", r"\bUSER (?:IF NOT EXISTS )?([A-Z_][A-Z0-9_]*)"),
    ("database", r"\b([A-Z_][A-Z0-9_]*)\.[A-Z_][A-Z0-9_]*(?:\.[A-Z_][A-Z0-9_]*)?\b"),
]
ENV = {
    "SNOWFLAKE_ROLE": "role",
    "SNOWFLAKE_WAREHOUSE": "warehouse",
    "SNOWFLAKE_DATABASE": "database",
    "SNOWFLAKE_SCHEMA": "raw_schema",
    "SNOWFLAKE_USER": "user",
}


def allowed(kind: str) -> set[str]:
    if kind == "role":
        return {NAMES["role"], NAMES["spcs_role"]} | SYSTEM_ROLES
    return {NAMES[kind]}


def sql_statements(path: Path) -> list[str]:
    """Statements without comments, each on one line."""
    text = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
    return [" ".join(statement.split()) for statement in text.split(";") if statement.strip()]


def references(statement: str) -> list[tuple[str, str]]:
    found = []
    for kind, pattern in REFERENCES:
        for name in re.findall(pattern, statement):
            if kind == "database" and "SYSTEM$" in statement and "." not in name:
                continue
            found.append((kind, name))
    return found


@pytest.mark.parametrize("path", SQL, ids=lambda p: p.name)
def test_every_object_the_sql_names_is_in_names_yaml(path: Path) -> None:
    wrong = [
        (kind, name, statement[:80])
        for statement in sql_statements(path)
        if not statement.upper().startswith(("SELECT", "SHOW"))
        for kind, name in references(statement)
        if name not in allowed(kind) and not (kind == "database" and name == "SYSTEM")
    ]
    assert wrong == []


def test_bootstrap_creates_what_the_others_use() -> None:
    text = " ".join(sql_statements(SQL[0]))
    for statement in (
        f"CREATE ROLE IF NOT EXISTS {NAMES['role']}",
        f"CREATE WAREHOUSE IF NOT EXISTS {NAMES['warehouse']}",
        f"CREATE DATABASE IF NOT EXISTS {NAMES['database']}",
        f"CREATE USER IF NOT EXISTS {NAMES['user']}",
        *(f"CREATE SCHEMA IF NOT EXISTS {NAMES['database']}.{s}" for s in NAMES["schemas"]),
    ):
        assert statement in text


def environments() -> list[tuple[str, dict[str, str]]]:
    helm = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    deployment = helm["dagster-user-deployments"]["deployments"][0]
    spcs = yaml.safe_load((DEPLOY / "snowflake" / "spcs" / "dagster-service.yaml").read_text())
    return [
        ("helm", {e["name"]: e["value"] for e in deployment["env"]}),
        *((c["name"], c["env"]) for c in spcs["spec"]["containers"]),
    ]


@pytest.mark.parametrize(("where", "env"), environments(), ids=lambda v: str(v)[:20])
def test_the_services_connect_with_the_bootstrap_names(where: str, env: dict[str, str]) -> None:
    # (the Helm values take SNOWFLAKE_USER from a Secret: deploy/README.md's command, checked
    # by test_no_file_uses_a_retired_or_other_name)
    assert {"SNOWFLAKE_ROLE", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_DATABASE"} <= set(env)
    assert {k: env[k] for k in ENV if k in env} == {k: NAMES[v] for k, v in ENV.items() if k in env}


def test_the_spcs_secrets_and_images_live_in_the_dagster_schema() -> None:
    schema = f"{NAMES['database']}.{NAMES['spcs_schema']}".lower()
    for name in ("dagster-service.yaml", "postgres-service.yaml"):
        spec = yaml.safe_load((DEPLOY / "snowflake" / "spcs" / name).read_text())["spec"]
        for container in spec["containers"]:
            assert container["image"].startswith(f"/{schema.replace('.', '/')}/images/")
            for secret in container.get("secrets", []):
                assert secret["snowflakeSecret"]["objectName"].startswith(f"{schema}.")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_uses_a_retired_or_other_name(path: Path) -> None:
    text = path.read_text()
    assert [n for n in NAMES["retired"] if re.search(rf"\b{n}\b", text)] == []
    # SNOWFLAKE_X=NAME or SNOWFLAKE_X: NAME in commands and docs
    for variable, kind in ENV.items():
        for value in re.findall(rf"\b{variable}[=:] ?`?([A-Z_][A-Z0-9_]*)\b", text):
            assert value == NAMES[kind], (variable, value)
