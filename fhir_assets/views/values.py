"""Compiled FHIRPath values and the context they are compiled in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Value:
    """A compiled FHIRPath collection.

    ``form``: ``item`` (one JSON item or NULL), ``raw`` (a JSON value as stored in the resource:
    NULL is empty, an array stands for its items), ``coll`` (a dialect collection of JSON items)
    or ``scalar`` (a typed SQL value, NULL is empty). ``type``: for ``scalar`` the SQL kind
    (boolean, string, integer, decimal, boundary); for JSON forms a FHIR type hint from ofType()
    or "json" when unknown. ``fhir``: the FHIR type of the items where the models know it.
    """

    form: str
    sql: Any
    type: str = "json"
    fhir: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """Where an expression is evaluated: the focus item, ``%rowIndex`` and the resource."""

    focus: str
    index: str
    resource: str
    type: str | None = None  # the focus's FHIR type, where known
