"""The Snowflake emulator for tests: fakesnow's server mode, reached by the real connector."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    """A fresh fakesnow server on a free 127.0.0.1 port, as connection settings."""
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    with START_SERVER() as server:
        yield SnowflakeSettings(
            account=server["account"],
            user=server["user"],
            password=server["password"],
            database=database,
            host=server["host"],
            port=server["port"],
            protocol=server["protocol"],
        )


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
