"""Proof that no source identifier reached a de-identified table: every string column of
``fhir_deid.<view>`` is compared with the identifiers in the raw data (names, identifier values,
telecom, address lines, the ids of every resource the layer reads).

The identifiers are listed by ViewDefinitions compiled like any view, so the scan runs inside
the warehouse in both dialects; only counts per column come back, never a value.
"""

# Identifiers pass ``quoted``; the rest is compiled view SQL, so string-built SQL is safe here.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..views.compiler import compile_view, quote
from ..views.definition import ViewDefinition, parse_view
from ..views.errors import ViewError
from ..warehouse.sql import quoted, raw_table_names
from .build import DEID_SCHEMA

if TYPE_CHECKING:
    from ..warehouse.protocol import Warehouse

IDENT = "ident"
# Patient elements that identify the person (Safe Harbor (b)(2)(i) A, D, E, R)
PATIENT_PATHS = (
    "name.family",
    "name.given",
    "name.text",
    "identifier.value",
    "telecom.value",
    "address.line",
    "address.text",
    "contact.name.family",
    "contact.name.given",
    "contact.telecom.value",
)
STRING_TYPES = ("VARCHAR", "TEXT", "STRING")


def branch(path: str) -> dict[str, Any]:
    return {"forEach": path, "column": [{"name": IDENT, "path": "$this", "type": "string"}]}


def identifier_view(resource: str) -> ViewDefinition:
    """The identifiers of one resource type, one per row in column ``ident``."""
    own = {"column": [{"name": IDENT, "path": "getResourceKey()", "type": "string"}]}
    paths = PATIENT_PATHS if resource == "Patient" else ("identifier.value",)
    raw = {
        "resource": resource,
        "name": "deid_identifiers",
        "select": [{"unionAll": [own, *(branch(p) for p in paths)]}],
    }
    return parse_view(raw)


def identifiers_sql(warehouse: Warehouse, resources: Iterable[str]) -> str | None:
    """One query listing the identifiers of every landed type in ``resources`` (None if none)."""
    landed = {str(name).lower() for (name,) in warehouse.fetch(raw_table_names())}
    parts: list[str] = []
    for resource in sorted(set(resources)):
        if resource.lower() not in landed:
            continue
        try:
            sql = compile_view(identifier_view(resource), warehouse.dialect.name).sql
        except ViewError:  # a type without ``identifier``: its ids only
            own = {
                "resource": resource,
                "select": [
                    {"column": [{"name": IDENT, "path": "getResourceKey()", "type": "string"}]}
                ],
            }
            sql = compile_view(parse_view(own), warehouse.dialect.name).sql
        parts.append(f'SELECT "{IDENT}" FROM ({sql}) AS ids_{len(parts)}')
    return " UNION ALL ".join(parts) or None


def string_columns(warehouse: Warehouse, table: str) -> list[str]:
    """The text columns of ``fhir_deid.<table>``, named as stored (the views' columns are
    quoted, so lower case in Snowflake too)."""
    rows = warehouse.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE UPPER(table_schema) = '{DEID_SCHEMA.upper()}' "
        f"AND UPPER(table_name) = '{table.upper()}' ORDER BY ordinal_position"
    )
    return [str(name) for name, kind in rows if str(kind).upper() in STRING_TYPES]


def scan(warehouse: Warehouse, table: str, resources: Iterable[str]) -> dict[str, int]:
    """Per string column of ``fhir_deid.<table>``, how many rows equal a source identifier."""
    source = identifiers_sql(warehouse, resources)
    columns = string_columns(warehouse, table)
    if source is None or not columns:
        return {column: 0 for column in columns}
    d = warehouse.dialect
    target = quoted(d, DEID_SCHEMA, table)
    counts = " UNION ALL ".join(
        f"SELECT {i} AS n, COUNT(*) AS hits FROM {target} AS t "
        f'WHERE t.{quote(column)} IN (SELECT "{IDENT}" FROM identifiers)'
        for i, column in enumerate(columns)
    )
    rows = warehouse.fetch(f"WITH identifiers AS ({source}) {counts}")
    hits = {int(n): int(count) for n, count in rows}
    return {column: hits.get(i, 0) for i, column in enumerate(columns)}
