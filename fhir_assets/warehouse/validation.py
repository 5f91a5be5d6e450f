"""Checking resources before they land: a fast structural mode and full R4B model validation.

``fast`` (default): the line is JSON (strict RFC 8259, by orjson: no NaN, no trailing comma);
it is a JSON object; ``resourceType`` is the type being landed; ``id`` is a FHIR id
(``[A-Za-z0-9\\-.]{1,64}``, R4 2.24.0.1); ``meta``, when present, is an object;
``meta.versionId``, when present, is a string id; ``meta.lastUpdated``, when present, is a FHIR
instant with a time zone and a real date. These are what the MERGE relies on. DuckDB applies
them to whole batches while it takes the values out (``sql.checked_lines``); a line it refuses
is checked again by ``check`` here, which names the problem (or, should the SQL ever be
stricter, finds the line fine after all and lands it).

``full``: the fast checks, then the resource is validated against the fhir.resources **R4B**
(4.3.0) pydantic model of its type: element names, cardinalities, primitive formats and choice
types; codes are not checked against value sets. fhir.resources 8 has no R4 (4.0.1) package.
R4B is R4 plus changes that HL7 declared breaking only for the Evidence-Based-Medicine and
Medication-Definition resources (and Substance); none of them is in the catalog, so an R4
resource of a catalog type validates against R4B. The one gap: an element that exists only in
R4B would be accepted although R4 does not define it. A model runs about 3.4k Observations/s on
one core, so full validation runs in a ``ProcessPoolExecutor`` across cores (``landing.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any

import orjson

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
    they accept and for the error messages (the SQL in ``sql.checked_lines`` accepts a subset).

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


@cache
def model_class(resource_type: str) -> Callable[[Mapping[str, Any]], Any]:
    """The R4B pydantic model's ``model_validate`` for a type (looked up once per process)."""
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type).model_validate  # type: ignore[no-any-return]


def validate_model(resource: dict[str, Any], resource_type: str) -> str | None:
    """Full R4B model validation of one resource that passed ``check``.

    Returns:
        None when valid, else the errors as ``path: message`` lines, without input values
        (pydantic's default text quotes the input, which is PHI).
    """
    from pydantic import ValidationError

    try:
        model_class(resource_type)(resource)
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or resource_type}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)[:10]
        )
    return None


def validate_texts(resource_type: str, texts: list[str]) -> list[tuple[int, str]]:
    """Full validation of a batch of JSON texts; run in worker processes.

    Returns:
        (position in ``texts``, error) for each invalid resource.
    """
    errors = []
    for position, text in enumerate(texts):
        resource = orjson.loads(text)
        if type(resource) is not dict or resource.get("resourceType") != resource_type:
            continue  # the fast checks quarantine it, or take the tombstones of a deletion Bundle
        error = validate_model(resource, resource_type)
        if error is not None:
            errors.append((position, error))
    return errors
