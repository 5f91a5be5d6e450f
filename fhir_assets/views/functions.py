"""FHIRPath functions supported in views (the SQL on FHIR v2 "shareable" subset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import boundary, conversions, elements, reflection, strings
from .fhirpath import Binary, Call, Literal, Member, Node
from .values import Context, Value

if TYPE_CHECKING:
    from .expressions import ExpressionCompiler

# Reference.reference "[base/]Type/id[/_history/v]" (FHIR R4 §2.3.0 Resource references)
# FHIR primitives whose values are strings: ofType(string) matches them too
STRINGS = {"code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid", "base64Binary"}
REFERENCE = "([A-Za-z]+)/([A-Za-z0-9.-]+)(/_history/[A-Za-z0-9.-]+)?$"


def type_name(compiler: ExpressionCompiler, node: Call) -> str:
    """The type argument of ofType(T) / getReferenceKey(T) (``FHIR.T`` allowed)."""
    if len(node.args) != 1 or not isinstance(node.args[0], Member):
        raise compiler.fail(f"{node.name}() without a type name argument", node)
    return node.args[0].name


def arity(compiler: ExpressionCompiler, node: Call, allowed: tuple[int, ...]) -> None:
    if len(node.args) not in allowed:
        counts = " or ".join(map(str, allowed))
        raise compiler.fail(f"{node.name}() with {len(node.args)} arguments (takes {counts})", node)


def call(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    """Compile ``base.name(args)``; raise UnsupportedError naming an unknown function."""
    handler = HANDLERS.get(node.name)
    if handler is None:
        raise compiler.fail(f"FHIRPath function {node.name}()", node)
    return handler(compiler, node, ctx)


def of_type(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    """``element.ofType(T)``: a choice element's ``elementT`` (FHIR JSON §"Choice of Data
    Types"), or the element itself if its declared type is T; refused if it can never be T."""
    kind = type_name(compiler, node)
    if not isinstance(node.base, Member):
        raise compiler.fail("ofType() except right after an element (value.ofType(X))", node)
    name = node.base.name
    parent = compiler.base(node.base.base, ctx)
    options = elements.choices(parent.fhir, name)
    declared = elements.element(parent.fhir, name)
    if declared is not None and not options:
        if declared.type != kind and not (kind == "string" and declared.type in STRINGS):
            raise compiler.fail(
                f"ofType({kind}) on {parent.fhir}.{name}, which is a {declared.type} "
                "(never of that type)",
                node,
            )
        return compiler.navigate(parent, name, hint=kind, fhir=declared.type)
    if options and kind not in options:
        raise compiler.fail(
            f"ofType({kind}) on {parent.fhir}.{name}[x], whose types are "
            f"{', '.join(sorted(options))}",
            node,
        )
    if not options and elements.known(parent.fhir):
        raise compiler.fail(f"ofType({kind}) on {parent.fhir}.{name}: no such element", node)
    # a choice element, or an element of a type the models do not describe: FHIR JSON naming
    suffix = kind[0].upper() + kind[1:]
    return compiler.navigate(parent, name + suffix, hint=kind, fhir=kind)


def first(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    value = compiler.base(node.base, ctx)
    d = compiler.dialect
    if value.form == "raw":
        return Value("item", d.raw_first(value.sql), value.type, value.fhir)
    if value.form == "coll":
        return Value("item", d.coll_item(value.sql, "0"), value.type, value.fhir)
    return value


def exists_sql(compiler: ExpressionCompiler, value: Value) -> str:
    d = compiler.dialect
    if value.form in ("item", "scalar"):
        return f"(({value.sql}) IS NOT NULL)"
    if value.form == "raw":
        size = d.raw_size(value.sql)
        array = d.is_array(value.sql)
        absent = f"({value.sql}) IS NULL"
        return f"(CASE WHEN {absent} THEN FALSE WHEN {array} THEN {size} > 0 ELSE TRUE END)"
    return f"({d.coll_size(value.sql)} > 0)"


def exists(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0, 1))
    value = where(compiler, node, ctx) if node.args else compiler.base(node.base, ctx)
    return Value("scalar", exists_sql(compiler, value), "boolean")


def empty(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    return Value(
        "scalar", f"(NOT {exists_sql(compiler, compiler.base(node.base, ctx))})", "boolean"
    )


def count(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    base = node.base
    if isinstance(base, Call) and base.name == "distinct" and not base.args:
        value = compiler.base(base.base, ctx)  # distinct().count() as one distinct count
        if value.form != "scalar":
            sql = compiler.dialect.coll_size_distinct(compiler.coll(value))
            return Value("scalar", sql, "integer")
    value = compiler.base(node.base, ctx)
    if value.form == "scalar":
        return Value("scalar", f"(CASE WHEN ({value.sql}) IS NULL THEN 0 ELSE 1 END)", "integer")
    return Value("scalar", compiler.dialect.coll_size(compiler.coll(value)), "integer")


def filtered(compiler: ExpressionCompiler, value: Value, predicate: Node, ctx: Context) -> Value:
    """``value.where(predicate)``: the predicate sees each item as its focus."""

    def condition(item: str) -> str:
        return compiler.boolean(predicate, Context(item, ctx.index, ctx.resource, value.fhir))

    if value.form == "item":
        sql = f"CASE WHEN {condition(value.sql)} THEN {value.sql} END"
        return Value("item", sql, value.type, value.fhir)
    coll = compiler.dialect.coll_filter(compiler.coll(value), condition)
    return Value("coll", coll, value.type, value.fhir)


def where(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (1,))
    return filtered(compiler, compiler.base(node.base, ctx), node.args[0], ctx)


def extension(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (1,))
    url = node.args[0]
    if not isinstance(url, Literal) or url.type != "string":
        raise compiler.fail("extension() with a url that is not a string literal", node)
    extensions = compiler.navigate(compiler.base(node.base, ctx), "extension")
    return filtered(compiler, extensions, Binary("=", Member(None, "url"), url), ctx)


def negate(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    value = compiler.base(node.base, ctx)
    return Value("scalar", f"(NOT {compiler.scalar(value, 'boolean', 'not() operand')})", "boolean")


def join(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0, 1))
    separator = (
        compiler.scalar(compiler.compile(node.args[0], ctx), "string", "join separator")
        if node.args
        else "''"
    )
    value = compiler.base(node.base, ctx)
    # the join of an empty collection is empty, not '' (FHIRPath N1 §5.6.13)
    if value.form == "scalar":
        return Value("scalar", f"CAST({value.sql} AS VARCHAR)", "string")
    d, coll = compiler.dialect, compiler.coll(value)
    joined = d.coll_join(coll, separator)
    return Value("scalar", f"CASE WHEN {d.coll_size(coll)} > 0 THEN {joined} END", "string")


def resource_key(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0,))
    value = compiler.base(node.base, ctx)
    return Value(
        "scalar",
        compiler.scalar(compiler.navigate(value, "id"), "string", "getResourceKey()"),
        "string",
    )


def reference_key(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    arity(compiler, node, (0, 1))
    reference = compiler.navigate(
        compiler.single(compiler.base(node.base, ctx), "getReferenceKey()"), "reference"
    )
    text = compiler.scalar(reference, "string", "Reference.reference")
    d = compiler.dialect
    key = d.regexp_group(text, REFERENCE, 2)
    if node.args:
        wanted = d.string(type_name(compiler, node))
        key = f"CASE WHEN {d.regexp_group(text, REFERENCE, 1)} = {wanted} THEN {key} END"
    return Value("scalar", key, "string")


def boundary_function(low: bool) -> Callable[[ExpressionCompiler, Call, Context], Value]:
    def handler(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
        arity(compiler, node, (0,))
        value = compiler.single(compiler.base(node.base, ctx), f"{node.name}()")
        if value.form == "scalar":
            raise compiler.fail(f"{node.name}() of a literal or computed value", node)
        kind = value.fhir if value.type == "json" and value.fhir else value.type
        return Value(
            "scalar", boundary.boundary(compiler.dialect, value.sql, kind, low), "boundary"
        )

    return handler


HANDLERS: dict[str, Callable[[ExpressionCompiler, Call, Context], Value]] = {
    "ofType": of_type,
    "first": first,
    "exists": exists,
    "empty": empty,
    "count": count,
    "where": where,
    "extension": extension,
    "not": negate,
    "join": join,
    "getResourceKey": resource_key,
    "getReferenceKey": reference_key,
    "lowBoundary": boundary_function(low=True),
    "highBoundary": boundary_function(low=False),
    **strings.HANDLERS,
    **reflection.HANDLERS,
    **conversions.HANDLERS,
}
