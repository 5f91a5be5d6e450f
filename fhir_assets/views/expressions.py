"""FHIRPath expression tree -> SQL expression, through a ``Dialect``.

Forms of a compiled value (``Value.form``):
- ``item``: one JSON item or NULL (empty);
- ``raw``: a JSON value as stored in the resource: NULL is empty, an array stands for its items;
- ``coll``: a dialect collection of JSON items;
- ``scalar``: a typed SQL value (``type`` boolean/string/integer/decimal), NULL is empty.
JSON forms carry a ``type`` hint ("json" when unknown, else the FHIR type named by ofType()).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import elements, functions, operators, reflection
from .dialect import Dialect
from .errors import UnsupportedError, ViewDefinitionError
from .fhirpath import (
    Binary,
    Call,
    Constant,
    Index,
    Literal,
    Member,
    Negate,
    Node,
    Quantity,
    This,
)
from .values import Context, Value
from .valuesets import Codes

ROOT = re.compile(r"[a-z]\.f0")  # the resource (context 0) in a stage, see branches.BranchWriter
NUMERIC = {"integer", "decimal", "positiveInt", "unsignedInt", "integer64"}
COMPARISONS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
ARITHMETIC = {"+", "-", "*", "/"}
# FHIRPath's three-valued logic (§6.5) is SQL's: NULL is the empty collection.
LOGIC = {
    "and": "({a} AND {b})",
    "or": "({a} OR {b})",
    "xor": "({a} <> {b})",
    "implies": "(NOT {a} OR {b})",
}


class ExpressionCompiler:
    """Compiles the expressions of one view (its constants and name give errors context)."""

    def __init__(
        self,
        dialect: Dialect,
        view: str,
        resource: str,
        constants: dict[str, Literal],
        valuesets: Mapping[str, Codes] | None = None,
    ):
        self.dialect = dialect
        self.valuesets = valuesets or {}
        self.view = view
        self.resource_type = resource
        self.constants = constants
        # top-level elements of the resource read through one parse (see Dialect.hoist)
        self.hoisted: dict[str, int] | None = {} if dialect.hoists else None

    def fail(self, message: str, node: Node | None = None) -> UnsupportedError:
        """An UnsupportedError naming the construct and, for a call, where it is written."""
        where = ""
        if isinstance(node, Call | Binary) and node.pos >= 0:
            where = f" at position {node.pos} of {node.source!r}"
        return UnsupportedError(
            f"view {self.view!r}: unsupported {message}{where} ({self.dialect.name})"
        )

    def compile(self, node: Node, ctx: Context) -> Value:
        """Compile one expression tree node in ``ctx``."""
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, This):
            return Value("item", ctx.focus, fhir=ctx.type)
        if isinstance(node, Constant):
            return self.constant(node.name, ctx)
        if isinstance(node, Member):
            return self.member(node, ctx)
        if isinstance(node, Call):
            return functions.call(self, node, ctx)
        if isinstance(node, Index):
            return self.index(node, ctx)
        if isinstance(node, Binary):
            return self.binary(node, ctx)
        if isinstance(node, Quantity):
            raise self.fail("a quantity literal outside date arithmetic")
        if isinstance(node, Negate):
            value = self.number(self.compile(node.operand, ctx))
            return Value("scalar", f"(-{value.sql})", value.type)
        raise self.fail(f"expression {node!r}")

    def literal(self, node: Literal) -> Value:
        if node.type == "empty":
            return Value("scalar", "NULL", "string")
        if node.type == "string":
            return Value("scalar", self.dialect.string(str(node.value)), "string")
        if node.type == "boolean":
            return Value("scalar", "TRUE" if node.value else "FALSE", "boolean")
        return Value("scalar", repr(node.value), node.type)

    def constant(self, name: str, ctx: Context) -> Value:
        if name == "rowIndex":
            return Value("scalar", ctx.index, "integer")
        if name in ("resource", "rootResource"):
            return Value("item", ctx.resource, fhir=self.resource_type)
        if name not in self.constants:
            raise ViewDefinitionError(f"view {self.view!r}: undefined constant %{name}")
        return self.literal(self.constants[name])

    def base(self, node: Node | None, ctx: Context) -> Value:
        return Value("item", ctx.focus, fhir=ctx.type) if node is None else self.compile(node, ctx)

    def member(self, node: Member, ctx: Context, hint: str = "json") -> Value:
        if isinstance(node.base, Call) and node.base.name == "type":
            return reflection.type_info(self, node.base, node.name, ctx)
        if node.base is None and node.name == self.resource_type:
            # "Patient.name": the type name selects the focus
            return Value("item", ctx.focus, fhir=self.resource_type)
        return self.navigate(self.base(node.base, ctx), node.name, hint)

    def navigate(
        self, value: Value, name: str, hint: str = "json", fhir: str | None = None
    ) -> Value:
        """``value.name`` with FHIRPath flattening of repeating elements."""
        if not name.replace("_", "").isalnum():
            raise self.fail(f"element name {name!r}")
        if fhir is None and (found := elements.element(value.fhir, name)) is not None:
            fhir = found.type
        if value.form == "item":
            if self.hoisted is not None and ROOT.fullmatch(value.sql):
                number = self.hoisted.setdefault(name, len(self.hoisted) + 1)
                return Value("raw", f"{value.sql[:-2]}h[{number}]", hint, fhir)
            return Value("raw", self.dialect.field(value.sql, name), hint, fhir)
        if value.form == "scalar":
            raise self.fail(f"navigation .{name} on a literal or computed value")
        if value.form == "raw" and (raw := self.dialect.raw_nav(value.sql, name)) is not None:
            return Value("raw", raw, hint, fhir)
        return Value("coll", self.dialect.coll_nav(self.coll(value), name), hint, fhir)

    def index(self, node: Index, ctx: Context) -> Value:
        value = self.compile(node.base, ctx)
        position = self.compile(node.index, ctx)
        if position.form != "scalar" or position.type != "integer":
            raise self.fail("an indexer must be an integer literal or constant")
        d, i = self.dialect, position.sql
        if value.form == "raw":
            return Value("item", d.raw_index(value.sql, i), value.type, value.fhir)
        if value.form == "coll":
            return Value("item", d.coll_item(value.sql, i), value.type, value.fhir)
        return Value(value.form, f"CASE WHEN {i} = 0 THEN {value.sql} END", value.type, value.fhir)

    # conversions
    def coll(self, value: Value) -> Any:
        """Any JSON form as a dialect collection."""
        if value.form == "coll":
            return value.sql
        if value.form == "raw":
            return self.dialect.coll_of_raw(value.sql)
        if value.form == "item":
            return self.dialect.coll_of_item(value.sql)
        raise self.fail("a collection operation on a computed scalar value")

    def single(self, value: Value, what: str) -> Value:
        """At most one item, else a runtime error naming ``what`` (never a silent first())."""
        d = self.dialect
        message = f"view {self.view!r}: {what} returned more than one value"
        if value.form == "raw":
            return Value("item", d.raw_single(value.sql, message), value.type, value.fhir)
        if value.form == "coll":
            return Value("item", d.coll_single(value.sql, message), value.type, value.fhir)
        return value

    def scalar(self, value: Value, kind: str, what: str) -> str:
        """One value as SQL of ``kind`` (boolean, integer, decimal, string, timestamp)."""
        value = self.single(value, what)
        d = self.dialect
        if kind == "timestamp":  # an instant: always complete, with its time zone
            return d.to_timestamp(self.scalar(value, "string", what))
        if value.form == "scalar":
            if value.type == kind or (kind == "decimal" and value.type == "integer"):
                return str(value.sql)
            if kind == "string":
                return f"CAST({value.sql} AS {d.sql_type('string')})"
            if kind in ("integer", "decimal") and value.type in (*NUMERIC, "boundary"):
                return f"CAST({value.sql} AS {d.sql_type(kind)})"
            raise ViewDefinitionError(f"view {self.view!r}: {what} is a {value.type}, not a {kind}")
        if kind == "boolean":
            return d.to_boolean(value.sql, f"view {self.view!r}: {what} is not a boolean")
        if kind == "integer":
            return d.to_integer(value.sql)
        if kind == "decimal":
            return d.to_number(value.sql)
        return d.to_text(value.sql)

    def boolean(self, node: Node, ctx: Context) -> str:
        return self.scalar(self.compile(node, ctx), "boolean", "an operand of and/or/not/where()")

    def as_json(self, value: Value) -> Value:
        """A computed scalar as a JSON item (other forms are JSON already)."""
        if value.form != "scalar":
            return value
        return Value("item", self.dialect.scalar_json(str(value.sql)))

    def number(self, value: Value) -> Value:
        kind = "integer" if value.type == "integer" else "decimal"
        return Value("scalar", self.scalar(value, kind, "arithmetic operand"), kind)

    # operators
    def binary(self, node: Binary, ctx: Context) -> Value:
        other = operators.binary(self, node, ctx)
        if other is not None:
            return other
        logic = LOGIC.get(node.op)
        if logic is not None:
            a, b = self.boolean(node.left, ctx), self.boolean(node.right, ctx)
            return Value("scalar", logic.format(a=a, b=b), "boolean")
        left, right = self.compile(node.left, ctx), self.compile(node.right, ctx)
        if node.op in COMPARISONS:
            return Value("scalar", self.compare(COMPARISONS[node.op], left, right), "boolean")
        if node.op == "+" and (textual(left) or textual(right)):
            # string concatenation; an empty operand makes it empty (N1 §6.6.1), unlike &
            a, b = (self.scalar(v, "string", "+ operand") for v in (left, right))
            return Value("scalar", f"({a} || {b})", "string")
        if node.op in ARITHMETIC:
            return self.arithmetic(node.op, self.number(left), self.number(right))
        if node.op == "&":
            a = self.scalar(left, "string", "& operand")
            b = self.scalar(right, "string", "& operand")
            return Value("scalar", f"(COALESCE({a}, '') || COALESCE({b}, ''))", "string")
        raise self.fail(f"operator {node.op!r}", node)

    def arithmetic(self, op: str, x: Value, y: Value) -> Value:
        """``+ - *`` in exact decimals (or integers); a product of decimals multiplies operands
        rounded to 9 places, so that its 18 places fit the decimal type."""
        if x.type == y.type == "integer" and op != "/":
            return Value("scalar", f"({x.sql} {op} {y.sql})", "integer")
        decimal = self.dialect.sql_type("decimal")
        if op == "*":
            product = self.dialect.sql_type("product")
            sql = f"CAST(CAST({x.sql} AS {product}) * CAST({y.sql} AS {product}) AS {decimal})"
            return Value("scalar", sql, "decimal")
        return Value("scalar", f"CAST({x.sql} {op} {y.sql} AS {decimal})", "decimal")

    def compare(self, op: str, left: Value, right: Value) -> str:
        left, right = (
            self.single(left, "comparison operand"),
            self.single(right, "comparison operand"),
        )
        kind = comparison_kind(left, right)
        if kind is None:
            return f"({self.dialect.json_compare(op, left.sql, right.sql)})"
        a = self.scalar(left, kind, "comparison operand")
        b = self.scalar(right, kind, "comparison operand")
        return f"({a} {op} {b})"


# FHIR primitives whose JSON value is a string (a ``+`` with one of them concatenates)
TEXT = {"string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid"}


def textual(value: Value) -> bool:
    """Whether a value is known to be a string at compile time."""
    return value.type == "string" or (value.type == "json" and value.fhir in TEXT)


def comparison_kind(left: Value, right: Value) -> str | None:
    """The SQL kind both sides are compared as; None: two JSON items of unknown type."""
    for value in (left, right):
        if value.form == "scalar":
            return "decimal" if value.type in NUMERIC else value.type
    for value in (left, right):
        if value.type in NUMERIC:
            return "decimal"
        if value.type == "boolean":
            return "boolean"
        if value.type != "json":
            return "string"
    return None
