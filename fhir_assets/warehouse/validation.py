"""Checking resources before they land: a fast structural mode and full R4B model validation.

``fast`` (default): the line is JSON (strict RFC 8259, by orjson: no NaN, no trailing comma);
it is a JSON object; ``resourceType`` is the type being landed; ``id`` is a FHIR id
(``[A-Za-z0-9\\-.]{1,64}``, R4 2.24.0.1); ``meta``, when present, is an object;
``meta.versionId``, when present, is a string id; ``meta.lastUpdated``, when present, is a FHIR
instant with a time zone and a real date. These are what the MERGE relies on. DuckDB applies
them to whole batches while it takes the values out (``duckdb_sql.checked_lines``); a line it
refuses is checked again by ``check`` here, which names the problem (or, should the SQL ever be
stricter, finds the line fine after all and lands it).

``full``: the fast checks, then the R4B model of the type (``models.py``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

FAST = "fast"
FULL = "full"
MODES = (FAST, FULL)

# FHIR R4 id datatype (2.24.0.1) and instant (2.24.0.2: time zone required), written so that
# Python's re, Arrow and DuckDB (RE2) read them alike: ASCII classes only, no year 0000, hours
# 00-23 (DuckDB would take 24:00), no leap second (Python's datetime refuses :60).
ID_CORE = r"[A-Za-z0-9\-.]{1,64}"
INSTANT_CORE = (
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
ID_PATTERN = f"^{ID_CORE}$"
INSTANT_PATTERN = f"^{INSTANT_CORE}$"
ID = re.compile(ID_PATTERN.removesuffix("$") + r"\Z").match
INSTANT = re.compile(INSTANT_PATTERN.removesuffix("$") + r"\Z").match
BAD_ID = "id is missing or not a FHIR id ([A-Za-z0-9-.]{1,64})"
BAD_VERSION = "meta.versionId is not a FHIR id"
BAD_INSTANT = "{name} is not a FHIR instant (YYYY-MM-DDThh:mm:ss[.s]+zz:zz)"


class ResourceError(ValueError):
    """A resource that cannot land; the message names the problem, never the content."""


def check(resource: Any, resource_type: str) -> tuple[str, str | None, str | None]:
    """The fast structural checks of one parsed resource, as Python: the authority for what
    they accept and for the error messages (the SQL in ``duckdb_sql.checked_lines`` accepts a
    subset).

    Args:
        resource: the parsed JSON value.
        resource_type: the type being landed.

    Returns:
        (id, meta.versionId, meta.lastUpdated) of the resource.

    Raises:
        ResourceError: what is wrong with it.
    """
    if type(resource) is not dict:
        raise ResourceError(f"not a JSON object but a JSON {type(resource).__name__}")
    found = resource.get("resourceType")
    if found != resource_type:
        raise ResourceError(f"resourceType is {found!r}, expected {resource_type!r}")
    rid = resource.get("id")
    if type(rid) is not str or not ID(rid):
        raise ResourceError(BAD_ID)
    meta = resource.get("meta")
    if meta is None:
        return rid, None, None
    if type(meta) is not dict:
        raise ResourceError("meta is not a JSON object")
    version, updated = meta.get("versionId"), meta.get("lastUpdated")
    if version is not None and (type(version) is not str or not ID(version)):
        raise ResourceError(BAD_VERSION)
    if updated is not None:
        check_instant(updated, "meta.lastUpdated")
    return rid, version, updated


def check_instant(value: Any, name: str) -> None:
    """Raise ``ResourceError`` unless ``value`` is a FHIR instant (a real date, with a zone)."""
    if type(value) is not str or not INSTANT(value):
        raise ResourceError(BAD_INSTANT.format(name=name))
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise ResourceError(f"{name} is not a valid date and time: {exc}") from None
