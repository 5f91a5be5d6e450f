"""The keyed functions in SQL equal their Python reference, in DuckDB and on the Snowflake
emulator: pseudonyms (DuckDB byte-equal to Python's ``hmac``), date shifts, the ZIP rule."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb
import fakesnow
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fhir_assets.deid.errors import DeidPolicyError
from fhir_assets.deid.keyed import DeidKey, KeyedSql, pseudonym, restricted_zip3, shift_days, zip3

SECRET = "k" * 40
KEY = DeidKey.from_secret(SECRET)
RESTRICTED = restricted_zip3()
SAFE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


class Engine:
    """Runs one scalar SQL expression in a dialect."""

    def __init__(self, dialect: str, run: Any) -> None:
        self.dialect = dialect
        self.sql = KeyedSql(dialect)
        self.run = run

    def value(self, expr: str) -> Any:
        return self.run(f"SELECT {expr}")[0][0]


@pytest.fixture(scope="module", params=["duckdb", "snowflake"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "duckdb":
        con = duckdb.connect()
        yield Engine("duckdb", lambda q: con.execute(q).fetchall())
        con.close()
        return
    import snowflake.connector

    with fakesnow.patch():
        con = snowflake.connector.connect(database="D", schema="S")
        cursor = con.cursor()
        yield Engine("snowflake", lambda q: cursor.execute(q).fetchall())
        con.close()


def literal(value: str, dialect: str = "duckdb") -> str:
    """A string literal; Snowflake also reads backslash as an escape (warehouse.sql.Dialect)."""
    text = "'" + value.replace("'", "''") + "'"
    if dialect == "snowflake":  # the emulator reads `$name` as a session variable even in a
        # string literal (Snowflake does not): spell the dollar sign as CHR(36)
        text = text.replace("\\", "\\\\").replace("$", "' || CHR(36) || '")
    return text


def test_keyed_duckdb_pseudonym_is_byte_equal_to_python_hmac() -> None:
    con = duckdb.connect()
    for value in ["", "pat-1", "Ünïcødé id", "a" * 200]:
        [(got,)] = con.execute(
            f"SELECT {KeyedSql('duckdb').pseudonym(KEY, literal(value))}"
        ).fetchall()
        expected = hmac.new(KEY.hmac_key, value.encode(), hashlib.sha256).hexdigest()
        assert got == expected == pseudonym(KEY, value)
    assert KEY.hmac_key == hashlib.sha256(SECRET.encode()).hexdigest().encode()


def test_keyed_short_key_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(DeidPolicyError, match=r"at least 32 characters.*token_hex"):
        DeidKey.from_secret("short")


def test_keyed_repr_shows_no_key_material() -> None:
    assert KEY.ipad.hex() not in repr(KEY) and "ipad=" not in repr(KEY)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=SAFE_TEXT)
@example(value="back\\slash 'quote' ünï $A")
def test_keyed_sql_pseudonym_equals_reference(engine: Engine, value: str) -> None:
    assert engine.value(engine.sql.pseudonym(KEY, literal(value, engine.dialect))) == pseudonym(
        KEY, value, engine.dialect
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    patient=SAFE_TEXT,
    first=st.dates(date(1900, 1, 1), date(2100, 1, 1)),
    gap=st.integers(-20000, 20000),
)
def test_keyed_date_shift_keeps_intervals_and_equals_reference(
    engine: Engine, patient: str, first: date, gap: int
) -> None:
    """Property: both dates of one patient move by the same non-zero shift (|shift| <= 365),
    so the days between them are unchanged; the SQL shift equals the Python one."""
    second = first + timedelta(days=gap)
    digest = engine.sql.pseudonym(KEY, f"'date-shift:' || {literal(patient, engine.dialect)}")
    days = engine.value(engine.sql.shift_days(f"({engine.sql.shift_number(digest)})"))
    assert days == shift_days(KEY, patient, engine.dialect)
    assert days != 0 and -365 <= days <= 365
    moved = [
        engine.value(engine.sql.add_days(f"CAST('{d.isoformat()}' AS DATE)", str(days), "date"))
        for d in (first, second)
    ]
    assert moved[0] == first + timedelta(days=days)
    assert (moved[1] - moved[0]).days == gap


def test_keyed_shift_differs_between_patients_and_keys() -> None:
    shifts = {shift_days(KEY, f"p{i}") for i in range(200)}
    assert len(shifts) > 100  # spread over the range, not one offset for all
    other = DeidKey.from_secret("x" * 40)
    assert sum(shift_days(KEY, f"p{i}") == shift_days(other, f"p{i}") for i in range(200)) < 5


ZIPS = st.one_of(
    st.from_regex(r"\A[0-9]{5}(-[0-9]{4})?\Z"),
    st.sampled_from(RESTRICTED).map(lambda p: p + "42"),
    st.text(st.sampled_from("0123456789ab -"), max_size=8),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(code=ZIPS)
def test_keyed_zip_rule(engine: Engine, code: str) -> None:
    """Property: at most three digits survive, restricted prefixes become 000, anything not
    starting with three digits becomes NULL; the SQL equals the Python rule."""
    got = engine.value(engine.sql.zip3(literal(code, engine.dialect), RESTRICTED))
    assert got == zip3(code, RESTRICTED)
    head = code.strip()[:3]
    if got is not None:
        assert len(got) == 3 and got.isdigit()
        assert got == ("000" if head in RESTRICTED else head)
    else:
        assert not (len(head) == 3 and head.isdigit())


def test_keyed_restricted_zip_prefixes_are_the_17_of_the_hhs_guidance() -> None:
    assert RESTRICTED == tuple(
        "036 059 063 102 203 556 692 790 821 823 830 831 878 879 884 890 893".split()
    )
