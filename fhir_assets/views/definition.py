"""ViewDefinition JSON (SQL on FHIR v2) parsed and validated into a small immutable tree.

https://build.fhir.org/ig/FHIR/sql-on-fhir-v2/StructureDefinition-ViewDefinition.html
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .errors import UnsupportedError, ViewDefinitionError
from .fhirpath import Literal, Node, parse
from .valuesets import Codes, load_valuesets

# The spec restricts column and view names to database-friendly identifiers.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

# constant value[x] type -> FHIRPath literal type
CONSTANT_TYPES = {
    "Boolean": "boolean",
    "Decimal": "decimal",
    "Integer": "integer",
    "Integer64": "integer",
    "PositiveInt": "integer",
    "UnsignedInt": "integer",
}
PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "boolean": bool,
    "decimal": (int, float),
    "integer": int,
}
STRING_CONSTANTS = (
    "Base64Binary Canonical Code Date DateTime Id Instant Markdown Oid String Time Uri Url Uuid"
).split()


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: ``name`` = ``path`` evaluated in its select's context."""

    name: str
    path: Node
    text: str
    type: str | None
    collection: bool
    # the warehouse type the author asked for with an ``ansi/type`` tag ("date", "timestamp")
    hint: str | None = None
    description: str | None = None  # the column's ``description``, shown in the Dagster UI
    # every tag as (name, value), e.g. ("deid", "hash") read by fhir_assets/deid/policy.py
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Select:
    """A select node: its own columns, nested selects and unionAll, under an optional focus."""

    columns: tuple[Column, ...]
    selects: tuple[Select, ...]
    union: tuple[Select, ...]
    for_each: Node | None = None
    or_null: bool = False
    repeat: tuple[Node, ...] = ()

    def names(self) -> list[str]:
        """Output column names in spec order: columns, nested selects, then unionAll."""
        names = [column.name for column in self.columns]
        for select in self.selects:
            names += select.names()
        if self.union:
            names += self.union[0].names()
        return names

    def all_columns(self) -> list[Column]:
        """Every column under this node (unionAll: the first branch), in output order."""
        columns = list(self.columns)
        for select in self.selects:
            columns += select.all_columns()
        if self.union:
            columns += self.union[0].all_columns()
        return columns


@dataclass(frozen=True, slots=True)
class ViewDefinition:
    """A parsed ViewDefinition."""

    name: str
    resource: str
    root: Select
    where: tuple[Node, ...]
    constants: dict[str, Literal]
    # the local ValueSets memberOf() may name, by url (see valuesets.py)
    valuesets: Mapping[str, Codes] = field(default_factory=dict)

    @property
    def columns(self) -> list[Column]:
        """Output columns in order."""
        return self.root.all_columns()


def fail(message: str) -> ViewDefinitionError:
    return ViewDefinitionError(message)


def parse_column(raw: Any) -> Column:
    if not isinstance(raw, dict):
        raise fail(f"column must be an object, got {raw!r}")
    name, path = raw.get("name"), raw.get("path")
    if not isinstance(name, str) or not NAME.match(name):
        raise fail(f"column name {name!r} must match {NAME.pattern}")
    if not isinstance(path, str):
        raise fail(f"column {name!r}: path must be a FHIRPath string")
    kind = raw.get("type")
    if kind is not None and not isinstance(kind, str):
        raise fail(f"column {name!r}: type must be a string")
    collection = raw.get("collection") is True
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise fail(f"column {name!r}: description must be a string")
    hint = type_hint(name, raw, collection)  # also checks that tags are {name, value} objects
    tags = tuple((str(t.get("name")), str(t.get("value"))) for t in raw.get("tag", []))
    return Column(name, parse(path), path, kind, collection, hint, description, tags)


# ``ansi/type`` tag values -> the typed column kinds they select. A FHIR dateTime carries its
# offset whenever it has a time, so TIMESTAMP keeps it (TIMESTAMPTZ / TIMESTAMP_TZ).
ANSI_TYPES = {"DATE": "date", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamp"}


def type_hint(name: str, raw: dict[str, Any], collection: bool) -> str | None:
    """The column's ``ansi/type`` tag (the spec's "database type hints") as a column kind.

    date and dateTime values may be partial ("1970", "1970-03"): SQL-on-FHIR v2 leaves them
    text unless the author tags the column (the spec's example "relies on the birth dates
    being full dates"). A tagged column casts a partial value as its period's start
    (``Dialect.typed_date``); untagged columns keep their text.
    """
    tags = raw.get("tag", [])
    if not isinstance(tags, list) or not all(isinstance(tag, dict) for tag in tags):
        raise fail(f"column {name!r}: tag must be a list of {{name, value}} objects")
    values = [tag.get("value") for tag in tags if tag.get("name") == "ansi/type"]
    if not values:
        return None
    value = str(values[0]).strip().upper()
    if value not in ANSI_TYPES:
        raise UnsupportedError(
            f"column {name!r}: ansi/type {values[0]!r} is unsupported (supported: "
            f"{', '.join(ANSI_TYPES)})"
        )
    if collection:
        raise UnsupportedError(f"column {name!r}: ansi/type on a collection is unsupported")
    return ANSI_TYPES[value]


def parse_path(raw: Any, what: str) -> Node:
    if not isinstance(raw, str):
        raise fail(f"{what} must be a FHIRPath string, got {raw!r}")
    return parse(raw)


def parse_select(raw: Any) -> Select:
    if not isinstance(raw, dict):
        raise fail(f"select must be an object, got {raw!r}")
    focus = [key for key in ("forEach", "forEachOrNull", "repeat") if key in raw]
    if len(focus) > 1:
        raise fail(f"a select may have only one of forEach, forEachOrNull, repeat: {focus}")
    for_each = None
    if "forEach" in raw or "forEachOrNull" in raw:
        key = "forEach" if "forEach" in raw else "forEachOrNull"
        for_each = parse_path(raw[key], key)
    repeat: tuple[Node, ...] = ()
    if "repeat" in raw:
        if not isinstance(raw["repeat"], list) or not raw["repeat"]:
            raise fail("repeat must be a non-empty list of FHIRPath strings")
        repeat = tuple(parse_path(path, "repeat") for path in raw["repeat"])
    select = Select(
        columns=tuple(parse_column(column) for column in raw.get("column", [])),
        selects=tuple(parse_select(select) for select in raw.get("select", [])),
        union=tuple(parse_select(select) for select in raw.get("unionAll", [])),
        for_each=for_each,
        or_null="forEachOrNull" in raw,
        repeat=repeat,
    )
    check_union(select)
    return select


def check_union(select: Select) -> None:
    """Every unionAll branch must yield the same column names in the same order (spec)."""
    if not select.union:
        return
    first = select.union[0].names()
    for branch in select.union[1:]:
        if branch.names() != first:
            raise fail(f"unionAll branches differ in columns: {first} vs {branch.names()}")


def parse_constant(raw: Any) -> tuple[str, Literal]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise fail(f"constant must be an object with a name, got {raw!r}")
    values = [key for key in raw if key.startswith("value")]
    if len(values) != 1:
        raise fail(f"constant {raw['name']!r} must have exactly one value[x]")
    suffix = values[0][len("value") :]
    value = raw[values[0]]
    if suffix in STRING_CONSTANTS:
        return raw["name"], Literal(str(value), "string")
    if suffix in CONSTANT_TYPES:
        kind = CONSTANT_TYPES[suffix]
        if not isinstance(value, PYTHON_TYPES[kind]) or (
            kind != "boolean" and isinstance(value, bool)
        ):
            raise fail(f"constant {raw['name']!r}: value{suffix} must be a JSON {kind}")
        return raw["name"], Literal(cast(int | float | bool, value), kind)
    raise fail(f"constant {raw['name']!r}: unsupported type value{suffix}")


def parse_view(raw: Any, valuesets: Mapping[str, Codes] | None = None) -> ViewDefinition:
    """Validate a ViewDefinition resource given as parsed JSON.

    Args:
        raw: the ViewDefinition (a dict).
        valuesets: the ValueSets ``memberOf()`` may use, by url.

    Returns:
        The parsed view.

    Raises:
        ViewDefinitionError: it is invalid (the message says what and where).
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("resource"), str):
        raise fail("a ViewDefinition needs a 'resource' (the FHIR resource type)")
    if not NAME.match(raw["resource"]):
        raise fail(f"resource {raw['resource']!r} is not a FHIR resource type name")
    if not isinstance(raw.get("select"), list) or not raw["select"]:
        raise fail("a ViewDefinition needs a non-empty 'select' list")
    name = raw.get("name") or raw["resource"].lower()
    if not isinstance(name, str) or not NAME.match(name):
        raise fail(f"view name {name!r} must match {NAME.pattern}")
    root = Select(columns=(), selects=tuple(parse_select(s) for s in raw["select"]), union=())
    names = root.names()
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise fail(f"view {name!r}: duplicate column names {duplicates}")
    where = tuple(
        parse_path(w.get("path") if isinstance(w, dict) else w, "where.path")
        for w in raw.get("where", [])
    )
    constants = dict(parse_constant(c) for c in raw.get("constant", []))
    return ViewDefinition(name, raw["resource"], root, where, constants, dict(valuesets or {}))


def load_view(path: str | Path, valuesets: Mapping[str, Codes] | None = None) -> ViewDefinition:
    """Read and validate a ViewDefinition JSON file (see ``parse_view``).

    ``valuesets`` default to the ValueSet files next to it (``load_valuesets``).
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read ViewDefinition {path}: {exc}") from exc
    if valuesets is None:
        valuesets = load_valuesets(Path(path).parent)
    return parse_view(raw, valuesets)
