"""Type reflection and terminology: ``type().name``/``.namespace``, ``memberOf()``, ``resolve()``.

A warehouse query holds no type information at run time, so ``type()`` is compiled from what
the compiler knows: FHIR element types from the R4B models (namespace ``FHIR``), the kind of a
literal or computed value (namespace ``System``, FHIRPath N1 §10.2), and for a choice element
``value[x]`` the typed key present in the JSON (``valueQuantity`` -> Quantity).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import elements, functions
from .fhirpath import Call, Literal, Member
from .values import Context, Value
from .valuesets import HINT, lookup

if TYPE_CHECKING:
    from .expressions import ExpressionCompiler

# FHIRPath System types of computed values (N1 §10.2)
SYSTEM = {"boolean": "Boolean", "string": "String", "integer": "Integer", "decimal": "Decimal"}
STRING_LIKE = {"code", "string", "uri", "url", "canonical", "id", "oid", "uuid", "markdown"}


def type_info(compiler: ExpressionCompiler, node: Call, part: str, ctx: Context) -> Value:
    """``x.type().name`` / ``x.type().namespace`` as a string (empty when x is empty)."""
    if part not in ("name", "namespace") or node.args:
        raise compiler.fail(f"type().{part} (only type().name and type().namespace)", node)
    base = node.base
    if isinstance(base, Member):
        parent = compiler.base(base.base, ctx)
        options = elements.choices(parent.fhir, base.name)
        if options:  # a choice element: the type of the key that is present
            d = compiler.dialect
            cases = " ".join(
                f"WHEN {functions.exists_sql(compiler, compiler.navigate(parent, alias))} "
                f"THEN {d.string(kind if part == 'name' else 'FHIR')}"
                for kind, alias in options.items()
            )
            return Value("scalar", f"(CASE {cases} END)", "string")
    value = compiler.base(base, ctx)
    if value.form == "scalar" and value.type in SYSTEM:
        name, namespace = SYSTEM[value.type], "System"
    elif value.form != "scalar" and (value.fhir or value.type) not in (None, "json"):
        name, namespace = value.fhir or value.type, "FHIR"
    else:
        raise compiler.fail("type() of an element whose type the models do not know", node)
    text = compiler.dialect.string(name if part == "name" else namespace)
    sql = f"CASE WHEN {functions.exists_sql(compiler, value)} THEN {text} END"
    return Value("scalar", sql, "string")


def type_call(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    raise compiler.fail("type() except as type().name or type().namespace", node)


def member_of(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    """``x.memberOf(url)`` over a local ValueSet (FHIR R4 §"FHIRPath functions"): a Coding's
    (system, code), any coding of a CodeableConcept, or a code/string when the ValueSet has one
    system; empty when x is empty or has more than one item."""
    functions.arity(compiler, node, (1,))
    url = node.args[0]
    if not isinstance(url, Literal) or url.type != "string":
        raise compiler.fail("memberOf() with a url that is not a string literal", node)
    codes = lookup(compiler.valuesets, str(url.value))
    if codes is None:
        raise compiler.fail(
            f"memberOf({url.value!r}): no local ValueSet with that url; put the ValueSet JSON "
            f"(with expansion.contains or compose.include[].concept) in {HINT}",
            node,
        )
    value = compiler.base(node.base, ctx)
    d = compiler.dialect
    kind = "string" if value.form == "scalar" else value.fhir or value.type
    if value.form in ("scalar", "item"):
        item, one = str(value.sql), f"({value.sql}) IS NOT NULL"
    else:
        coll = compiler.coll(value)
        item, one = d.coll_item(coll, "0"), f"{d.coll_size(coll)} = 1"

    def coding(sql: str) -> str:
        system, code = (f"COALESCE({d.to_text(d.field(sql, k))}, '')" for k in ("system", "code"))
        keys = ", ".join(d.string(f"{s}|{c}") for s, c in sorted(codes))
        return f"({system} || '|' || {code}) IN ({keys})" if codes else "FALSE"

    if kind == "Coding":
        test = coding(item)
    elif kind == "CodeableConcept":
        codings = d.coll_nav(d.coll_of_item(item), "coding")
        test = f"({d.coll_size(d.coll_filter(codings, coding))} > 0)"
    elif kind in STRING_LIKE:
        # a bare code names no system: it matches only a ValueSet drawn from one code system
        text = value.sql if value.form == "scalar" else d.to_text(item)
        listed = ", ".join(d.string(c) for c in sorted({c for _, c in codes}))
        single = len({s for s, _ in codes}) == 1
        test = f"({text} IN ({listed}))" if single else "FALSE"
    else:
        raise compiler.fail(f"memberOf() on a {kind} (takes code, Coding or CodeableConcept)", node)
    return Value("scalar", f"(CASE WHEN {one} THEN {test} END)", "boolean")


def resolve(compiler: ExpressionCompiler, node: Call, ctx: Context) -> Value:
    raise compiler.fail(
        "FHIRPath function resolve(): a view reads one resource at a time; use getReferenceKey() "
        "(select reference.getReferenceKey(Type), join it to the other view's getResourceKey())",
        node,
    )


HANDLERS = {"type": type_call, "memberOf": member_of, "resolve": resolve}
