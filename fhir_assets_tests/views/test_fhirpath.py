"""The FHIRPath parser: precedence, literals, invocations, errors."""

from __future__ import annotations

import pytest

from fhir_assets.views.errors import FhirPathSyntaxError
from fhir_assets.views.fhirpath import (
    Binary,
    Call,
    Constant,
    Index,
    Literal,
    Member,
    Negate,
    This,
    parse,
)


def test_parse_member_chain_and_call() -> None:
    assert parse("name.family.first()") == Call(Member(Member(None, "name"), "family"), "first", ())


def test_parse_and_binds_tighter_than_or() -> None:
    node = parse("a or b and c")
    assert node == Binary(
        "or", Member(None, "a"), Binary("and", Member(None, "b"), Member(None, "c"))
    )


def test_parse_comparison_binds_tighter_than_and() -> None:
    node = parse("active.exists() and active = true")
    assert isinstance(node, Binary) and node.op == "and"
    assert node.right == Binary("=", Member(None, "active"), Literal(True, "boolean"))


def test_parse_arithmetic_precedence() -> None:
    assert parse("1 + 2 * 3") == Binary(
        "+", Literal(1, "integer"), Binary("*", Literal(2, "integer"), Literal(3, "integer"))
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'it''s'", None),
        ("'a\\'b'", Literal("a'b", "string")),
        ("1.50", Literal(1.5, "decimal")),
        ("{}", Literal(None, "empty")),
        ("$this", This()),
        ("%rowIndex", Constant("rowIndex")),
        ("-x", Negate(Member(None, "x"))),
        ("name[%i]", Index(Member(None, "name"), Constant("i"))),
        ("`div`.x", Member(Member(None, "div"), "x")),
    ],
)
def test_parse_terms(text: str, expected: object) -> None:
    if expected is None:
        with pytest.raises(FhirPathSyntaxError):
            parse(text)
    else:
        assert parse(text) == expected


def test_parse_where_with_arguments() -> None:
    node = parse("name.where(use = 'official' and family = 'f1').exists()")
    assert isinstance(node, Call) and node.name == "exists"
    assert isinstance(node.base, Call) and node.base.name == "where" and len(node.base.args) == 1


@pytest.mark.parametrize("text", ["@@", "", "name.", "a and", "where(", "1 +", "a b", 7])
def test_parse_rejects_invalid(text: object) -> None:
    with pytest.raises(FhirPathSyntaxError):
        parse(text)  # type: ignore[arg-type]
