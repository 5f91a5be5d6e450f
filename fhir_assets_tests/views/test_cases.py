"""Our FHIRPath cases (``cases/*.json``, the suite's format) on DuckDB and on Snowflake SQL.

The Snowflake SQL runs on the fakesnow emulator; the cases listed in ``EMULATOR_CANNOT`` use
functions fakesnow does not translate, and for them the test checks that the emulator really
refuses them (its error, or a wrong answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import count
from typing import Any

import duckdb
import pytest

from fhir_assets.views import compile_view, parse_view
from fhir_assets.views.errors import UnsupportedError

from .conformance import (
    CASES,
    Case,
    canonical,
    case_view,
    cases,
    fakesnow_connection,
    run_duckdb,
    run_snowflake,
)

ALL = list(cases(CASES))
# What fakesnow 0.12 cannot run, with the emulator's own words (or None: it runs the SQL but
# answers wrongly). Each is run there anyway: the test fails once the emulator agrees, so that
# the case moves to the executed ones. fakesnow does not translate a FLATTEN subquery inside
# ARRAY_SLICE/ARRAY_DISTINCT (it emits "TABLE(UNNEST(input => ...))", a DuckDB syntax error);
# its TYPEOF answers 'JSON' for every VARIANT.
SLICE = 'syntax error at or near "TABLE"'
EMULATOR_CANNOT: dict[str, str | None] = {
    "fhirpath_functions:tail()": SLICE,
    "fhirpath_functions:skip()": "Malformed JSON",  # skip(1).first(): a quoted item re-parsed
    "fhirpath_functions:take()": SLICE,
    "fhirpath_functions:| union removes duplicates": SLICE,
    "fhirpath_functions:in with an empty left side": SLICE,
    "fhirpath_exact:distinct() items": SLICE,
    "fhirpath_functions:hasValue() of a complex element": None,
}
DATABASES = count()
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")


def check(case: Case, result: tuple[list[str], list[dict[str, Any]]]) -> None:
    _, rows = result
    assert canonical(rows) == canonical(case.test["expect"])


@pytest.mark.parametrize("case", ALL, ids=[case.id for case in ALL])
def test_case_duckdb(case: Case) -> None:
    if case.test.get("expectError"):
        with pytest.raises(UnsupportedError, match="unsupported"):
            run_duckdb(case)
        return
    check(case, run_duckdb(case))


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """One emulated Snowflake per worker process (fakesnow patches per process)."""
    with fakesnow_connection() as connection:
        yield connection


@pytest.mark.parametrize("case", ALL, ids=[case.id for case in ALL])
def test_case_snowflake(case: Case, emulator: Any) -> None:
    if case.test.get("expectError"):
        with pytest.raises(UnsupportedError, match="unsupported"):
            compile_view(case_view(case), "snowflake")
        return
    if case.id in EMULATOR_CANNOT:
        refused(case, emulator, EMULATOR_CANNOT[case.id])
        return
    check(case, run_snowflake(case, emulator, f"cases_{next(DATABASES)}"))


def refused(case: Case, emulator: Any, error: str | None) -> None:
    """The emulator really cannot run ``case``: it raises ``error``, or answers wrongly."""
    try:
        _, rows = run_snowflake(case, emulator, f"cases_{next(DATABASES)}")
    except Exception as exc:  # the connector's ProgrammingError, whatever the emulator raised
        assert error is not None and error in str(exc), str(exc)
        return
    assert error is None, "the emulator now runs this case: drop it from EMULATOR_CANNOT"
    assert canonical(rows) != canonical(case.test["expect"]), "the emulator now agrees"


def test_today_and_now_are_the_clock() -> None:
    view = parse_view(
        {
            "resource": "Patient",
            "select": [
                {"column": [{"name": "d", "path": "today()"}, {"name": "t", "path": "now()"}]}
            ],
        }
    )
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    con.execute(
        'CREATE TABLE fhir_raw.patient AS SELECT \'{"id": "p"}\' AS resource, FALSE AS deleted'
    )
    before = date.today().isoformat()
    today, now = con.execute(compile_view(view, "duckdb").sql).fetchone()  # type: ignore[misc]
    assert today in {before, date.today().isoformat()}  # the query may run across midnight
    moment = datetime.fromisoformat(now).replace(tzinfo=UTC)
    assert abs((moment - datetime.now(UTC)).total_seconds()) < 60
