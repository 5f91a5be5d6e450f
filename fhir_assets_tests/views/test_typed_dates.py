"""Columns tagged ``ansi/type`` DATE / TIMESTAMP come out typed; a partial value becomes its
period's start, a malformed one fails loudly; the default views type every date and dateTime.

Run on DuckDB and on the Snowflake SQL (fakesnow), over a table of hand-made Patients.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from fhir_assets.views import ViewDefinition, compile_view, parse_view
from fhir_assets.views.errors import UnsupportedError
from fhir_assets.views.library import load_views

from .conformance import fakesnow_views

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")
COMPLETE = [
    {"resourceType": "Patient", "id": "a", "birthDate": "1970-03-04"},
    {"resourceType": "Patient", "id": "b", "deceasedDateTime": "2020-05-06T07:08:09+02:00"},
    {"resourceType": "Patient", "id": "c"},
]
PARTIAL_DATE = {"resourceType": "Patient", "id": "p", "birthDate": "1970"}
PARTIAL_MONTH = {"resourceType": "Patient", "id": "q", "birthDate": "1970-02"}
PARTIAL_MOMENT = {"resourceType": "Patient", "id": "r", "deceasedDateTime": "2020-05"}
# a time without seconds is not a FHIR R4 dateTime; "1970-3-4" is no date
MALFORMED = [
    {"resourceType": "Patient", "id": "x", "deceasedDateTime": "2020-05-06T07:08"},
    {"resourceType": "Patient", "id": "y", "birthDate": "1970-3-4"},
]
PERIOD_STARTS = [
    ("p", dt.date(1970, 1, 1), None),
    ("q", dt.date(1970, 2, 1), None),
    ("r", None, dt.datetime(2020, 5, 1, tzinfo=dt.UTC)),
]


def view(tagged: bool = True) -> ViewDefinition:
    def column(name: str, path: str, fhir: str, ansi: str) -> dict[str, Any]:
        tag = [{"name": "ansi/type", "value": ansi}] if tagged else []
        return {"name": name, "path": path, "type": fhir, "tag": tag}

    return parse_view(
        {
            "resourceType": "ViewDefinition",
            "name": "typed",
            "resource": "Patient",
            "status": "active",
            "select": [
                {
                    "column": [
                        {"name": "id", "path": "id", "type": "id"},
                        column("birth", "birthDate", "date", "DATE"),
                        column("died", "deceased.ofType(dateTime)", "dateTime", "TIMESTAMP"),
                    ]
                }
            ],
        }
    )


def duck_rows(resources: list[dict[str, Any]], sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` over ``resources`` as ``fhir_raw.patient``, in UTC, sorted by id."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    con.execute("CREATE TABLE fhir_raw.patient (resource JSON, deleted BOOLEAN)")
    for item in resources:
        con.execute("INSERT INTO fhir_raw.patient VALUES (?, FALSE)", [json.dumps(item)])
    con.execute("SET TimeZone = 'UTC'")
    return sorted(con.execute(sql).fetchall(), key=lambda row: row[0])


@pytest.fixture
def snow() -> Iterator[Any]:
    with fakesnow_views() as connection:
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE fhir_raw.patient (resource VARIANT, deleted BOOLEAN)")
        yield cursor


def snow_rows(cursor: Any, resources: list[dict[str, Any]], sql: str) -> list[tuple[Any, ...]]:
    for item in resources:
        cursor.execute(
            "INSERT INTO fhir_raw.patient SELECT PARSE_JSON(%s), FALSE", (json.dumps(item),)
        )
    cursor.execute(sql)
    return sorted(cursor.fetchall(), key=lambda row: row[0])


def check_typed(rows: list[tuple[Any, ...]]) -> None:
    assert [row[0] for row in rows] == ["a", "b", "c"]
    assert rows[0][1] == dt.date(1970, 3, 4) and rows[0][2] is None
    died = rows[1][2]
    assert isinstance(died, dt.datetime) and died.tzinfo is not None
    assert died == dt.datetime(2020, 5, 6, 5, 8, 9, tzinfo=dt.UTC)  # the +02:00 offset kept
    assert rows[2][1:] == (None, None)


def test_tagged_columns_are_typed_on_duckdb() -> None:
    compiled = compile_view(view(), "duckdb")
    assert [(c.name, c.kind) for c in compiled.columns][1:] == [
        ("birth", "date"),
        ("died", "timestamp"),
    ]
    check_typed(duck_rows(COMPLETE, compiled.sql))


def test_tagged_columns_are_typed_on_snowflake(snow: Any) -> None:
    check_typed(snow_rows(snow, COMPLETE, compile_view(view(), "snowflake").sql))


def test_partial_values_are_their_period_start_on_duckdb() -> None:
    rows = duck_rows([PARTIAL_DATE, PARTIAL_MONTH, PARTIAL_MOMENT], compile_view(view()).sql)
    assert rows == PERIOD_STARTS


def test_partial_values_are_their_period_start_on_snowflake(snow: Any) -> None:
    sql = compile_view(view(), "snowflake").sql
    rows = snow_rows(snow, [PARTIAL_DATE, PARTIAL_MONTH, PARTIAL_MOMENT], sql)
    assert [(i, b, d if d is None else d.astimezone(dt.UTC)) for i, b, d in rows] == PERIOD_STARTS


@pytest.mark.parametrize("bad", MALFORMED, ids=["time without seconds", "unpadded date"])
def test_malformed_value_fails_loudly_not_lost_or_invented(bad: dict[str, Any]) -> None:
    with pytest.raises(duckdb.Error, match="malformed"):
        duck_rows([*COMPLETE, bad], compile_view(view(), "duckdb").sql)


def test_malformed_value_fails_on_snowflake(snow: Any) -> None:
    with pytest.raises(Exception, match="malformed"):
        snow_rows(snow, [*COMPLETE, MALFORMED[0]], compile_view(view(), "snowflake").sql)


def test_untagged_columns_keep_the_fhir_text() -> None:
    compiled = compile_view(view(tagged=False), "duckdb")
    rows = duck_rows([*COMPLETE, PARTIAL_DATE], compiled.sql)
    assert [row[1] for row in rows] == ["1970-03-04", None, None, "1970"]
    assert rows[1][2] == "2020-05-06T07:08:09+02:00"


def test_unknown_ansi_type_is_refused() -> None:
    raw = {
        "resourceType": "ViewDefinition",
        "resource": "Patient",
        "select": [{"column": [{"name": "x", "path": "id", "tag": [{"name": "ansi/type"}]}]}],
    }
    with pytest.raises(UnsupportedError, match="unsupported"):
        parse_view(raw)


@pytest.mark.parametrize("default", load_views(), ids=lambda v: v.name)
def test_default_views_type_every_date_and_keep_its_text(default: ViewDefinition) -> None:
    kinds = {c.name: c.kind for c in compile_view(default, "duckdb").columns}
    for column in default.columns:
        if column.type in ("date", "dateTime") and not column.name.endswith("_text"):
            assert kinds[column.name] == ("date" if column.type == "date" else "timestamp")
            assert kinds[f"{column.name}_text"] == "string"
        if column.type == "instant":
            assert kinds[column.name] == "timestamp"


def test_default_patient_view_keeps_partial_birth_date_text() -> None:
    (patient,) = [v for v in load_views() if v.resource == "Patient"]
    resources = [*COMPLETE[:1], PARTIAL_DATE, PARTIAL_MOMENT]
    sql = compile_view(patient, "duckdb").sql
    query = "SELECT id, birth_date, birth_date_text, deceased_at, deceased_at_text FROM v"
    rows = duck_rows(resources, f"WITH v AS ({sql}) {query}")
    assert rows == [
        ("a", dt.date(1970, 3, 4), "1970-03-04", None, None),
        ("p", dt.date(1970, 1, 1), "1970", None, None),
        ("r", None, None, dt.datetime(2020, 5, 1, tzinfo=dt.UTC), "2020-05"),
    ]
