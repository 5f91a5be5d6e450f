"""The Snowflake emulator for tests: fakesnow's server mode, reached by the real connector."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fakesnow

from fhir_assets.warehouse.snowflake import SnowflakeSettings, connect

# fakesnow.server() runs `import fakesnow.server`, which rebinds the package attribute to the
# submodule: a second call in the same process would call a module. Keep the function.
START_SERVER = fakesnow.server

BOOTSTRAP = Path(__file__).resolve().parent.parent / "deploy" / "snowflake" / "bootstrap.sql"
# Statements fakesnow cannot run, each marked in bootstrap.sql with `-- emulator: skip (why)`.
SKIP = re.compile(r"--\s*emulator:\s*skip")


@contextmanager
def emulator_settings(database: str = "FHIR_ASSETS") -> Iterator[SnowflakeSettings]:
    """A fresh fakesnow server on a free 127.0.0.1 port, as connection settings, with
    ``database`` emptied: every fakesnow server of a process shares one in-memory store, so a
    test run after another in the same pytest worker would otherwise see its tables."""
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    with START_SERVER() as server:
        settings = SnowflakeSettings(
            account=server["account"],
            user=server["user"],
            password=server["password"],
            database=database,
            host=server["host"],
            port=server["port"],
            protocol=server["protocol"],
        )
        empty_database(settings)
        yield settings


def empty_database(settings: SnowflakeSettings) -> None:
    """Drop every schema of the settings' database but its information schema (the emulator has
    no DROP DATABASE)."""
    connection = connect(settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT schema_name FROM {settings.database}.information_schema.schemata"  # noqa: S608
            )
            for (name,) in cursor.fetchall():
                if name.lower() not in ("information_schema", "main", "public"):
                    cursor.execute(f"DROP SCHEMA IF EXISTS {settings.database}.{name} CASCADE")
    finally:
        connection.close()


def bootstrap_statements(text: str | None = None) -> list[tuple[str, bool]]:
    """The bootstrap's statements, each with whether the emulator runs it."""
    text = BOOTSTRAP.read_text() if text is None else text
    statements = []
    for chunk in text.split(";"):
        skip = bool(SKIP.search(chunk))
        lines = [line for line in chunk.splitlines() if not line.strip().startswith("--")]
        statement = "\n".join(lines).strip()
        if statement:
            statements.append((statement, not skip))
    return statements


def apply_bootstrap(settings: SnowflakeSettings) -> int:
    """Run the bootstrap's statements the emulator supports; returns how many ran."""
    ran = 0
    connection = connect(settings)
    try:
        with connection.cursor() as cursor:
            for statement, runs in bootstrap_statements():
                if runs:
                    cursor.execute(statement)
                    ran += 1
    finally:
        connection.close()
    return ran


def emulator_environment(settings: SnowflakeSettings) -> dict[str, str]:
    """The ``FHIR_WAREHOUSE``/``SNOWFLAKE_*`` variables that point a process at the emulator."""
    return {
        "FHIR_WAREHOUSE": "snowflake",
        "SNOWFLAKE_ACCOUNT": settings.account,
        "SNOWFLAKE_USER": settings.user,
        "SNOWFLAKE_PASSWORD": settings.password or "",
        "SNOWFLAKE_DATABASE": settings.database,
        "SNOWFLAKE_HOST": settings.host or "",
        "SNOWFLAKE_PORT": str(settings.port),
        "SNOWFLAKE_PROTOCOL": settings.protocol or "",
    }


@contextmanager
def patched_warehouse() -> Iterator[Any]:
    """A landing warehouse on fakesnow's in-process patch (no server), closed afterwards."""
    from fhir_assets.warehouse.resources import SnowflakeWarehouseResource

    with fakesnow.patch():
        resource = SnowflakeWarehouseResource(
            account="fake", user="fake", password="fake", database="DB", schema="PUBLIC"
        )
        with resource.open_warehouse() as warehouse:
            yield warehouse
