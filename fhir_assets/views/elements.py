"""FHIR element types from fhir.resources' R4B models: what ``Patient.name`` or ``value[x]`` is.

The compiler uses them to resolve ``ofType()`` (a choice element ``value[x]`` is stored as
``valueQuantity``; any other element either has the named type or never matches) and to give
untyped columns the warehouse type of their element instead of text.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from functools import cache
from types import NoneType, UnionType
from typing import Any

# FHIR primitive type names (a choice suffix "String" is the primitive "string")
PRIMITIVES = {
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "integer64", "markdown", "oid", "positiveInt", "string", "time",
    "unsignedInt", "uri", "url", "uuid",
}  # fmt: skip
# fhir.resources' annotation classes whose names differ from the FHIR type's
RENAMED = {"encodedBytes": "base64Binary", "uuidVersion": "uuid"}


@dataclass(frozen=True, slots=True)
class Element:
    """An element's FHIR type name (``HumanName``, ``dateTime``) and whether it repeats."""

    type: str
    many: bool


@cache
def model(type_name: str) -> Any | None:
    """The R4B model class of a complex type, backbone element or resource (None: unknown)."""
    if not type_name or not type_name[0].isupper():
        return None  # primitives have no model
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(type_name)
    except (ValueError, KeyError, AttributeError):
        return None


def type_of(annotation: Any) -> Element | None:
    """Element from a model field annotation (Optional[List[abc.HumanNameType]] -> HumanName*)."""
    many = False
    while True:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin in (typing.Union, UnionType):
            annotation = next(arg for arg in args if arg is not NoneType)
        elif origin is list:
            many, annotation = True, args[0]
        else:
            break
    if typing.get_origin(annotation) is typing.Annotated:
        meta = typing.get_args(annotation)[1]
        name = type(meta).__name__
        name = name[0].lower() + name[1:]
        return Element(RENAMED.get(name, name), many)
    if annotation is bool:
        return Element("boolean", many)
    if annotation is str:
        return Element("string", many)
    name = getattr(annotation, "__name__", "")
    if name.endswith("Type") and name[0].isupper():
        return Element(name[: -len("Type")], many)
    return None


@cache
def fields(type_name: str) -> dict[str, Any]:
    """The model's fields by JSON name (``class`` for the Python ``class_fhir``)."""
    found = model(type_name)
    if found is None:
        return {}
    return {field.alias or name: field for name, field in found.model_fields.items()}


def element(type_name: str | None, name: str) -> Element | None:
    """The element ``name`` of ``type_name`` (None: unknown type or no such element)."""
    if type_name is None:
        return None
    field = fields(type_name).get(name)
    return None if field is None else type_of(field.annotation)


def choices(type_name: str | None, name: str) -> dict[str, str]:
    """The types of a choice element ``name[x]``: FHIR type -> JSON name (``valueQuantity``)."""
    if type_name is None:
        return {}
    result = {}
    for alias, field in fields(type_name).items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("one_of_many") == name:
            suffix = alias[len(name) :]
            primitive = suffix[0].lower() + suffix[1:]
            result[primitive if primitive in PRIMITIVES else suffix] = alias
    return result


def known(type_name: str | None) -> bool:
    """Whether the models describe ``type_name`` (so a missing element is really missing)."""
    return type_name is not None and model(type_name) is not None
