"""FHIRPath functions over collections and single strings (FHIRPath N1 §5.3-5.7, §6.5).

Empty propagation is SQL's: a NULL (empty) input or argument gives NULL (empty). A function that
needs one item raises at run time on more ("returned more than one value"), never takes the first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .fhirpath import Call
from .values import Context, Value

if TYPE_CHECKING:
    from .expressions import ExpressionCompiler

Handler = Callable[["ExpressionCompiler", Call, Context], Value]


def arity(compiler: ExpressionCompiler, node: Call, allowed: tuple[int, ...]) -> None:
    if len(node.args) not in allowed:
        counts = " or ".join(map(str, allowed))
        raise compiler.fail(f"{node.name}() with {len(node.args)} arguments (takes {counts})", node)


def text(compiler: ExpressionCompiler, node: Call, ctx: Context) -> str:
    """The input as one SQL string (NULL: empty)."""
    value = compiler.base(node.base, ctx)
    return compiler.scalar(value, "string", f"{node.name}() input")


def argument(compiler: ExpressionCompiler, node: Call, ctx: Context, number: int, kind: str) -> str:
    """Argument ``number``, evaluated in the caller's context (not per item)."""
    value = compiler.compile(node.args[number], ctx)
    return compiler.scalar(value, kind, f"{node.name}() argument")


def string_function(template: str, args: tuple[str, ...] = (), kind: str = "string") -> Handler:
    """A function of one string input and typed arguments, as a dialect template."""

    def handler(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
        arity(compiler, node, (len(args),))
        values = [argument(compiler, node, ctx, i, a) for i, a in enumerate(args)]
        sql = compiler.dialect.template(template, text(compiler, node, ctx), *values)
        return Value("scalar", sql, kind)

    return handler


def substring(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (1, 2))
    value = text(compiler, node, ctx)
    start = argument(compiler, node, ctx, 0, "integer")
    length = argument(compiler, node, ctx, 1, "integer") if len(node.args) == 2 else None
    sql = compiler.dialect.substring(value, start, length)
    # a start outside the string is empty (N1 §5.6.3)
    guarded = f"CASE WHEN {start} >= 0 AND {start} < LENGTH({value}) THEN {sql} END"
    return Value("scalar", guarded, "string")


def to_string(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    value = compiler.base(node.base, ctx)
    if value.form == "scalar" and value.type == "boolean":
        sql = f"CASE WHEN {value.sql} THEN 'true' WHEN NOT {value.sql} THEN 'false' END"
        return Value("scalar", sql, "string")
    return Value("scalar", text(compiler, node, ctx), "string")


def last(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    value = compiler.base(node.base, ctx)
    if value.form in ("item", "scalar"):
        return value
    return Value("item", compiler.dialect.coll_last(compiler.coll(value)), value.type, value.fhir)


def slice_function(start: Callable[[str], str], end: Callable[[str], str | None]) -> Handler:
    """tail()/skip(n)/take(n): items [start, end) of the input, as a collection."""

    def handler(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
        arity(compiler, node, (1,) if node.name in ("skip", "take") else (0,))
        n = argument(compiler, node, ctx, 0, "integer") if node.args else "1"
        value = compiler.base(node.base, ctx)
        if value.form == "scalar":
            raise compiler.fail(f"{node.name}() of a computed value", node)
        sliced = compiler.dialect.coll_slice(compiler.coll(value), start(n), end(n))
        return Value(*sliced, value.type, value.fhir)

    return handler


def distinct(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    value = compiler.base(node.base, ctx)
    if value.form == "scalar":
        return value
    form, sql = compiler.dialect.coll_distinct(compiler.coll(value))
    return Value(form, sql, value.type, value.fhir)


def union(compiler: ExpressionCompiler, left: Value, right: Value) -> Value:
    """``a | b``: the items of both, duplicates removed (N1 §6.5.1)."""
    colls = [compiler.coll(compiler.as_json(value)) for value in (left, right)]
    form, sql = compiler.dialect.coll_union(colls)
    return Value(form, sql)


def select(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    """``select(projection)``: the projection of every item, flattened (N1 §5.2.2)."""
    arity(compiler, node, (1,))
    value = compiler.base(node.base, ctx)
    if value.form == "scalar":
        raise compiler.fail("select() over a computed value", node)

    def projection(item: str) -> str:
        result = compiler.compile(node.args[0], Context(item, ctx.index, ctx.resource, value.fhir))
        result = compiler.as_json(result)
        if result.form == "coll":
            return compiler.dialect.coll_as_raw(result.sql)
        return str(result.sql)

    return Value("coll", compiler.dialect.coll_map(compiler.coll(value), projection))


def all_(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    """``all(criteria)``: true if the criteria are true for every item (true when empty)."""
    arity(compiler, node, (1,))
    value = compiler.base(node.base, ctx)
    if value.form == "scalar":
        raise compiler.fail("all() over a computed value", node)

    def failing(item: str) -> str:
        criteria = compiler.boolean(
            node.args[0], Context(item, ctx.index, ctx.resource, value.fhir)
        )
        return f"NOT COALESCE({criteria}, FALSE)"

    failures = compiler.dialect.coll_filter(compiler.coll(value), failing)
    return Value("scalar", f"({compiler.dialect.coll_size(failures)} = 0)", "boolean")


def has_value(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    """``hasValue()``: one primitive item with a value (not an object, N1 §"hasValue")."""
    arity(compiler, node, (0,))
    value = compiler.base(node.base, ctx)
    if value.form == "scalar":
        return Value("scalar", f"({value.sql} IS NOT NULL)", "boolean")
    item = compiler.single(value, "hasValue() input").sql
    return Value("scalar", f"COALESCE({compiler.dialect.is_primitive(item)}, FALSE)", "boolean")


def iif(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    """``iif(criterion, true-result[, otherwise-result])``: empty criterion takes otherwise."""
    arity(compiler, node, (2, 3))
    criterion = compiler.boolean(node.args[0], ctx)
    branches = [compiler.compile(arg, ctx) for arg in node.args[1:]]
    types = {b.type for b in branches if b.form == "scalar"}
    if all(b.form == "scalar" for b in branches) and len(types) == 1:
        kind = types.pop()
        sqls = [str(b.sql) for b in branches]
    else:  # mixed forms: compare as text, the common denominator
        kind = "string"
        sqls = [compiler.scalar(b, "string", "iif() result") for b in branches]
    otherwise = f" ELSE {sqls[1]}" if len(sqls) == 2 else ""
    return Value("scalar", f"(CASE WHEN {criterion} THEN {sqls[0]}{otherwise} END)", kind)


def clock(which: str) -> Handler:
    def handler(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
        arity(compiler, node, (0,))
        return Value("scalar", compiler.dialect.clock(which), "string")

    return handler


def refuse(reason: str) -> Handler:
    def handler(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
        raise compiler.fail(f"FHIRPath function {node.name}(): {reason}", node)

    return handler


HANDLERS: dict[str, Handler] = {
    "startsWith": string_function("starts", ("string",), "boolean"),
    "endsWith": string_function("ends", ("string",), "boolean"),
    "contains": string_function("contains", ("string",), "boolean"),
    "matches": string_function("matches", ("string",), "boolean"),
    "replace": string_function("replace", ("string", "string")),
    "upper": string_function("upper"),
    "lower": string_function("lower"),
    "length": string_function("length", (), "integer"),
    "substring": substring,
    "toString": to_string,
    "last": last,
    "tail": slice_function(lambda n: "1", lambda n: None),
    "skip": slice_function(lambda n: n, lambda n: None),
    "take": slice_function(lambda n: "0", lambda n: n),
    "distinct": distinct,
    "select": select,
    "all": all_,
    "hasValue": has_value,
    "iif": iif,
    "today": clock("today"),
    "now": clock("now"),
}
