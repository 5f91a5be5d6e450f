"""FHIRPath conversion functions (N1 §5.5): ``toInteger() toDecimal() toBoolean()`` and
``convertsToInteger() convertsToDecimal() convertsToBoolean() convertsToString()``.

Each takes a single input (several items fail at run time, as elsewhere); an empty input gives
empty, and an input that does not convert gives empty (``toX``) or false (``convertsToX``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .fhirpath import Call
from .values import Context, Value

if TYPE_CHECKING:
    from .expressions import ExpressionCompiler

Handler = Callable[["ExpressionCompiler", Call, Context], Value]
INTEGER = r"[+-]?[0-9]+"
DECIMAL = r"[+-]?[0-9]+(\.[0-9]+)?"
TRUE = ("'true'", "'t'", "'yes'", "'y'", "'1'", "'1.0'")
FALSE = ("'false'", "'f'", "'no'", "'n'", "'0'", "'0.0'")


def single_input(compiler: ExpressionCompiler, node: Call, ctx: Context) -> tuple[str, str | None]:
    """The input as text, and as a boolean when it is known to be one (else None)."""
    if node.args:
        raise compiler.fail(f"{node.name}() with arguments (takes none)", node)
    value = compiler.single(compiler.base(node.base, ctx), f"{node.name}() input")
    what = f"{node.name}() input"
    if value.type == "boolean" or value.fhir == "boolean":
        flag = compiler.scalar(value, "boolean", what)
        return f"CASE WHEN {flag} THEN 'true' WHEN NOT {flag} THEN 'false' END", flag
    return compiler.scalar(value, "string", what), None


def to_integer(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    text, flag = single_input(compiler, node, ctx)
    d = compiler.dialect
    if flag is not None:  # true is 1, false is 0
        return Value("scalar", f"CASE WHEN {flag} THEN 1 WHEN NOT {flag} THEN 0 END", "integer")
    integer = d.sql_type("integer")
    sql = f"CASE WHEN {d.full_match(text, INTEGER)} THEN CAST({text} AS {integer}) END"
    return Value("scalar", sql, "integer")


def to_decimal(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    text, flag = single_input(compiler, node, ctx)
    d = compiler.dialect
    decimal = d.sql_type("decimal")
    if flag is not None:
        sql = f"CAST(CASE WHEN {flag} THEN 1 WHEN NOT {flag} THEN 0 END AS {decimal})"
        return Value("scalar", sql, "decimal")
    sql = f"CASE WHEN {d.full_match(text, DECIMAL)} THEN CAST({text} AS {decimal}) END"
    return Value("scalar", sql, "decimal")


def to_boolean(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    text, flag = single_input(compiler, node, ctx)
    if flag is not None:
        return Value("scalar", flag, "boolean")
    lower = f"LOWER({text})"
    sql = (
        f"CASE WHEN {lower} IN ({', '.join(TRUE)}) THEN TRUE "
        f"WHEN {lower} IN ({', '.join(FALSE)}) THEN FALSE END"
    )
    return Value("scalar", sql, "boolean")


def converts(convert: Handler) -> Handler:
    """``convertsToX()``: empty for an empty input, else whether ``toX()`` gives a value."""

    def handler(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
        text, _ = single_input(compiler, node, ctx)
        converted = convert(compiler, node, ctx).sql
        sql = f"CASE WHEN {text} IS NOT NULL THEN ({converted}) IS NOT NULL END"
        return Value("scalar", sql, "boolean")

    return handler


def to_text(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    text, _ = single_input(compiler, node, ctx)
    return Value("scalar", text, "string")


HANDLERS: dict[str, Handler] = {
    "toInteger": to_integer,
    "toDecimal": to_decimal,
    "toBoolean": to_boolean,
    "convertsToInteger": converts(to_integer),
    "convertsToDecimal": converts(to_decimal),
    "convertsToBoolean": converts(to_boolean),
    "convertsToString": converts(to_text),
}
