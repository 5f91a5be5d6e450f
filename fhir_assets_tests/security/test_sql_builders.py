"""Every SQL identifier the builders interpolate goes through ``sql.identifier`` (or
``sql.qualified``, which calls it): a grep over the SQL builders, and the gate itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fhir_assets
from fhir_assets.warehouse import sql

PACKAGE = Path(fhir_assets.__file__).parent
BUILDERS = sorted(
    [
        *PACKAGE.glob("warehouse/*.py"),
        PACKAGE / "assets" / "checks.py",
        *PACKAGE.glob("writeback/*.py"),
        PACKAGE / "views" / "runner.py",
    ]
)
# An f-string placeholder right where SQL expects a table, schema, view or stage name.
KEYWORD = (
    r"(?:FROM|INTO|TABLE|JOIN|SCHEMA|EXISTS|UPDATE|STAGE|USING|VIEW|TRUNCATE|DESCRIBE)"
    r"\s+@?\{(?P<after_keyword>[^}]*)\}"
)
# ...and a placeholder right after ``}.``, the second part of a dotted name.
DOTTED = r"(?<=\}\.)\{(?P<after_dot>[^}]*)\}"
PLACEHOLDER = re.compile(f"{KEYWORD}|{DOTTED}", re.IGNORECASE)
# A line of SQL: an upper-case keyword (so a dotted placeholder in a message is not SQL).
SQL_LINE = re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|COPY|ALTER|FROM)\b")
GATES = re.compile(r"^(?:sql\.)?(?:identifier|qualified|quoted|history_table)\(")


def bypasses(text: str) -> list[str]:
    """The placeholders after an SQL keyword in f-strings of ``text`` that skip the gate."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not re.search(r"\bf[\"']", line) or not SQL_LINE.search(line):
            continue
        for match in PLACEHOLDER.finditer(line):
            expr = match["after_keyword"] or match["after_dot"] or ""
            if not GATES.match(expr.strip()):
                found.append(f"{number}: {line.strip()}")
    return found


def test_builders_route_every_identifier_through_the_gate() -> None:
    assert len(BUILDERS) > 10
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path in BUILDERS
        if (found := bypasses(path.read_text()))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "line",
    [
        'f"DROP TABLE {name}"',
        'f"SELECT * FROM {qualified_table}"',
        "f'INSERT INTO {schema}.{table} VALUES (1)'",
        "f'INSERT INTO {sql.identifier(schema)}.{table} VALUES (1)'",
        'f"COPY INTO x FROM @{stage}/rows"',
    ],
)
def test_the_grep_finds_a_bypass(line: str) -> None:
    assert bypasses(line)


def test_the_grep_accepts_the_gate() -> None:
    assert not bypasses('f"DROP TABLE {sql.identifier(name)} FROM {qualified(t)}"')


@pytest.mark.parametrize(
    "name",
    [
        "patient (id int); DROP TABLE fhir_raw.patient; --",
        "x/../../y",
        "",
        "1patient",
        "pat ient",
        "pat\u0130ent",
        'patient"',
        "select'",
        "fhir_raw..patient",
    ],
)
def test_identifier_refuses_what_is_not_plain(name: str) -> None:
    with pytest.raises(sql.UnsafeIdentifierError) as raised:
        sql.qualified(name)
    assert "refusing SQL identifier" in str(raised.value)


def test_identifier_keeps_plain_names() -> None:
    assert sql.qualified("medicationrequest") == "fhir_raw.medicationrequest"
    assert sql.identifier("fhir_raw._staging_ab12") == "fhir_raw._staging_ab12"
    assert sql.history_table("patient") == "patient_history"
