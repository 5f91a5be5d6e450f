"""FHIRPath operators beyond comparison and plain arithmetic (FHIRPath N1 §6).

``|`` union, ``in``/``contains`` membership, ``~``/``!~`` equivalence, ``is``/``as`` type tests,
``div``/``mod``, division by zero, and date/dateTime ± calendar quantity (``birthDate + 1 year``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import elements, strings
from .fhirpath import Binary, Call, Member, Node, Quantity
from .functions import exists_sql, of_type
from .values import Context, Value

if TYPE_CHECKING:
    from .expressions import ExpressionCompiler

# Calendar units a date of each precision (its text length) can carry; finer units are
# converted to the date's precision, truncating toward zero (N1 §6.6.1).
DAYS = {"year": 365, "month": 30, "week": 7, "day": 1}


def binary(compiler: ExpressionCompiler, node: Binary, ctx: Context) -> Value | None:
    """Compile the operators of this module; None: not one of them."""
    op = node.op
    if isinstance(node.right, Quantity) and op in ("+", "-"):
        return date_arithmetic(compiler, node, ctx, node.right)
    if op in ("is", "as"):
        return type_test(compiler, node, ctx)
    if op not in ("|", "in", "contains", "~", "!~", "div", "mod", "/"):
        return None
    left, right = compiler.compile(node.left, ctx), compiler.compile(node.right, ctx)
    if op == "|":
        return strings.union(compiler, left, right)
    if op in ("in", "contains"):
        item, coll = (left, right) if op == "in" else (right, left)
        return membership(compiler, item, coll)
    if op in ("~", "!~"):
        sql = equivalent(compiler, left, right)
        return Value("scalar", sql if op == "~" else f"(NOT {sql})", "boolean")
    return division(compiler, op, left, right)


def division(compiler: ExpressionCompiler, op: str, left: Value, right: Value) -> Value:
    """``/``, ``div``, ``mod``: dividing by zero is empty (N1 §6.6.4-6.6.6)."""
    x, y = compiler.number(left), compiler.number(right)
    guard = f"CASE WHEN {y.sql} = 0 THEN NULL ELSE {{}} END"
    if op == "/":
        return Value("scalar", guard.format(f"(CAST({x.sql} AS DOUBLE) / {y.sql})"), "decimal")
    kind = "integer" if x.type == y.type == "integer" else "decimal"
    if op == "mod":
        return Value("scalar", guard.format(f"({x.sql} % {y.sql})"), kind)
    integer = compiler.dialect.sql_type("integer")
    return Value("scalar", guard.format(f"CAST(TRUNC({x.sql} / {y.sql}) AS {integer})"), "integer")


def membership(compiler: ExpressionCompiler, item: Value, coll: Value) -> Value:
    """``item in coll``: empty if item is empty, else whether an item of coll equals it."""
    single = compiler.single(item, "'in' operand")
    if coll.form == "scalar":
        return Value("scalar", compiler.compare("=", single, coll), "boolean")

    def equal(candidate: str) -> str:
        return compiler.compare("=", Value("item", candidate, coll.type, coll.fhir), single)

    matches = compiler.dialect.coll_filter(compiler.coll(coll), equal)
    found = f"({compiler.dialect.coll_size(matches)} > 0)"
    return Value("scalar", f"CASE WHEN {exists_sql(compiler, single)} THEN {found} END", "boolean")


def equivalent(compiler: ExpressionCompiler, left: Value, right: Value) -> str:
    """``~``: both empty is true; strings compare case- and whitespace-insensitively."""
    a, b = (
        compiler.scalar(compiler.single(v, "'~' operand"), "string", "'~' operand")
        for v in (left, right)
    )

    def normal(sql: str) -> str:
        return f"LOWER(TRIM({compiler.dialect.collapse_whitespace(sql)}))"

    return (
        f"(CASE WHEN {a} IS NULL AND {b} IS NULL THEN TRUE WHEN {a} IS NULL OR {b} IS NULL "
        f"THEN FALSE ELSE {normal(a)} = {normal(b)} END)"
    )


def type_test(compiler: ExpressionCompiler, node: Binary, ctx: Context) -> Value:
    """``x is T`` / ``x as T``: ofType(T) of one item; ``is`` asks whether it gives one."""
    if not isinstance(node.right, Member) or node.right.base is not None:
        raise compiler.fail(f"'{node.op}' without a type name on its right", node)
    call = Call(node.left, "ofType", (node.right,), node.pos, node.source)
    typed = of_type(compiler, call, ctx)
    if node.op == "as":
        return compiler.single(typed, "'as' operand")
    sql = (
        f"CASE WHEN {exists_sql(compiler, typed)} THEN TRUE "
        f"WHEN {present(compiler, node.left, ctx)} THEN FALSE END"
    )
    return Value("scalar", sql, "boolean")


def present(compiler: ExpressionCompiler, node: Node, ctx: Context) -> str:
    """SQL true when ``node`` has an item of any type: a choice element ``value[x]`` is stored
    only under its typed names (``valueString``), so each of them is asked."""
    if isinstance(node, Member):
        parent = compiler.base(node.base, ctx)
        options = elements.choices(parent.fhir, node.name)
        if options:
            found = [
                exists_sql(compiler, compiler.navigate(parent, alias, fhir=kind))
                for kind, alias in options.items()
            ]
            return f"({' OR '.join(found)})"
    return exists_sql(compiler, compiler.compile(node, ctx))


def date_arithmetic(
    compiler: ExpressionCompiler, node: Binary, ctx: Context, quantity: Quantity
) -> Value:
    """date/dateTime ± calendar quantity, at the precision of the date (N1 §6.6.1)."""
    if quantity.unit not in DAYS:
        raise compiler.fail(f"date arithmetic with a {quantity.unit!r} quantity", node)
    if not isinstance(quantity.value, int):
        raise compiler.fail("date arithmetic with a decimal calendar quantity", node)
    value = compiler.scalar(compiler.compile(node.left, ctx), "string", "date operand")
    sign = 1 if node.op == "+" else -1
    n, unit = sign * quantity.value, quantity.unit
    d = compiler.dialect
    years = n if unit == "year" else int(n / 12) if unit == "month" else int(n / DAYS[unit] / 365)
    months = n * 12 if unit == "year" else n if unit == "month" else int(n * DAYS[unit] / 30)
    days_unit = unit if unit in ("year", "month") else "day"
    days = n * DAYS[unit] if unit in ("week", "day") else n
    sql = (
        f"CASE LENGTH({value}) WHEN 4 THEN CAST(CAST({value} AS INTEGER) + {years} AS VARCHAR) "
        f"WHEN 7 THEN {d.shift_date(value, months, 'month', 7)} "
        f"WHEN 10 THEN {d.shift_date(value, days, days_unit, 10)} "
        f"ELSE {d.shift_date(value, days, days_unit, 19)} || SUBSTR({value}, 20) END"
    )
    return Value("scalar", f"({sql})", "string")
