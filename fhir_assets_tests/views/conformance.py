"""Runs the SQL on FHIR v2 conformance cases on DuckDB and on fakesnow (Snowflake SQL)."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from fhir_assets.views import ViewDefinition, compile_view, parse_view
from fhir_assets.views.valuesets import load_valuesets

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = (
    REPO.parent / "shared" / "conformance" / "sql-on-fhir-v2" / "tests",
    Path("/work/shared/conformance/sql-on-fhir-v2/tests"),
)


def suite_dir() -> Path | None:
    """The folder of the official test files, or None when it is not checked out here."""
    return next((path for path in CANDIDATES if path.is_dir()), None)


@dataclass(frozen=True)
class Case:
    file: str
    title: str
    resources: list[dict[str, Any]]
    test: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.title}"


CASES = Path(__file__).resolve().parent / "cases"  # ours, in the suite's format
VALUESETS = load_valuesets(CASES)  # cases/valuesets/*.json, for memberOf()


def cases(folder: Path | None = None) -> Iterator[Case]:
    """The test cases of every JSON file in ``folder`` (default: the official suite)."""
    folder = folder or suite_dir()
    if folder is None:
        return
    for path in sorted(folder.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        for test in suite["tests"]:
            yield Case(path.stem, test["title"], suite["resources"], test)


def case_view(case: Case) -> ViewDefinition:
    """The case's view, with the ValueSets of ``cases/valuesets``."""
    return parse_view(case.test["view"], VALUESETS)


def resource_types(case: Case) -> set[str]:
    types = {r["resourceType"] for r in case.resources}
    if isinstance(case.test["view"].get("resource"), str):
        types.add(case.test["view"]["resource"])
    return types


def normalize(value: Any) -> Any:
    if isinstance(value, datetime):  # an instant column: compare the moment, in UTC
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):  # an ansi/type DATE column
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        number = float(value)
        return round(number, 9) if math.isfinite(number) else number
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return value


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(
        json.dumps({k: normalize(v) for k, v in row.items()}, sort_keys=True) for row in rows
    )


def run_duckdb(case: Case) -> tuple[list[str], list[dict[str, Any]]]:
    view = case_view(case)
    compiled = compile_view(view, "duckdb")
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    for kind in resource_types(case):
        table = f"fhir_raw.{kind.lower()}"
        con.execute(f"CREATE TABLE {table} (id VARCHAR, resource VARCHAR, deleted BOOLEAN)")
        rows = [
            (r.get("id"), json.dumps(r), False) for r in case.resources if r["resourceType"] == kind
        ]
        if rows:
            con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", rows)
    cursor = con.execute(compiled.sql)
    names = [d[0] for d in cursor.description]
    return names, [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def run_snowflake(
    case: Case, connection: Any, database: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Run on a fakesnow connection; each case gets its own database (``database``)."""
    view = case_view(case)
    compiled = compile_view(view, "snowflake")
    cursor = connection.cursor()
    cursor.execute(f"CREATE DATABASE {database}")
    cursor.execute(f"USE DATABASE {database}")
    cursor.execute("CREATE SCHEMA fhir_raw")
    cursor.execute("USE SCHEMA fhir_raw")
    for kind in resource_types(case):
        table = f"fhir_raw.{kind.lower()}"
        cursor.execute(f"CREATE TABLE {table} (id VARCHAR, resource VARIANT, deleted BOOLEAN)")
        for r in case.resources:
            if r["resourceType"] == kind:
                cursor.execute(
                    f"INSERT INTO {table} SELECT %s, PARSE_JSON(%s), FALSE",
                    (r.get("id"), json.dumps(r)),
                )
    cursor.execute(compiled.sql)
    names = [d[0] for d in cursor.description]
    rows = []
    for row in cursor.fetchall():
        values = dict(zip(names, row, strict=True))
        for column in compiled.columns:  # VARIANT/ARRAY values come back as JSON text
            if column.collection and isinstance(values[column.name], str):
                values[column.name] = json.loads(values[column.name])
        rows.append(values)
    return names, rows


@contextmanager
def fakesnow_connection(**connect: Any) -> Iterator[Any]:
    """A connection to the Snowflake emulator (fakesnow, patched in for this process; skipped
    where fakesnow is missing), closed afterwards."""
    import pytest

    fakesnow = pytest.importorskip("fakesnow")
    import snowflake.connector

    with warnings.catch_warnings(), fakesnow.patch():
        warnings.simplefilter("ignore")
        connection = snowflake.connector.connect(**connect)
        try:
            yield connection
        finally:
            connection.close()


@contextmanager
def fakesnow_views() -> Iterator[Any]:
    """A :func:`fakesnow_connection` with the current schema ``views.fhir_raw``, where the
    compiled views look for their raw tables."""
    with fakesnow_connection(database="views", schema="fhir_raw") as connection:
        cursor = connection.cursor()
        cursor.execute("CREATE DATABASE IF NOT EXISTS views")
        cursor.execute("CREATE SCHEMA IF NOT EXISTS views.fhir_raw")
        cursor.execute("USE SCHEMA views.fhir_raw")
        yield connection
