"""Checking resources before they land: a fast structural mode and full R4B model validation.

``fast`` (default): the line is a JSON object; ``resourceType`` is the type being landed; ``id``
is a FHIR id (``[A-Za-z0-9\\-.]{1,64}``, R4 2.24.0.1); ``meta.versionId``, when present, is a
string id; ``meta.lastUpdated``, when present, is a FHIR instant with a time zone. These are
what the MERGE relies on. About as fast as parsing the JSON.

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
import pyarrow as pa
import pyarrow.compute as pc

FAST = "fast"
FULL = "full"
MODES = (FAST, FULL)

# FHIR R4 id datatype (2.24.0.1) and instant (2.24.0.2: time zone required).
ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
ID = re.compile(ID_PATTERN.removesuffix("$") + r"\Z").match
INSTANT = re.compile(INSTANT_PATTERN.removesuffix("$") + r"\Z").match
BAD_ID = "id is missing or not a FHIR id ([A-Za-z0-9-.]{1,64})"
BAD_VERSION = "meta.versionId is not a FHIR id"
BAD_INSTANT = "{name} is not a FHIR instant (YYYY-MM-DDThh:mm:ss[.s]+zz:zz)"


class ResourceError(ValueError):
    """A resource that cannot land; the message names the problem, never the content."""


def check(resource: Any, resource_type: str) -> tuple[str, str | None, str | None]:
    """Fast structural checks of one parsed resource (``check_shape`` plus value formats).

    Args:
        resource: the parsed JSON value.
        resource_type: the type being landed.

    Returns:
        (id, meta.versionId, meta.lastUpdated) of the resource.

    Raises:
        ResourceError: what is wrong with it.
    """
    rid, version, updated = check_shape(resource, resource_type)
    error = value_error(rid, version, updated)
    if error:
        raise ResourceError(error)
    return rid, version, updated


def check_shape(resource: Any, resource_type: str) -> tuple[str, str | None, str | None]:
    """The per-line part of ``check``: JSON types and ``resourceType`` only. The formats of id,
    versionId and lastUpdated are checked a whole batch at a time (``batch_value_errors``).

    Raises:
        ResourceError: what is wrong with it.
    """
    if type(resource) is not dict:
        raise ResourceError(f"not a JSON object but a JSON {type(resource).__name__}")
    found = resource.get("resourceType")
    if found != resource_type:
        raise ResourceError(f"resourceType is {found!r}, expected {resource_type!r}")
    rid = resource.get("id")
    if type(rid) is not str:
        raise ResourceError(BAD_ID)
    meta = resource.get("meta")
    if meta is None:
        return rid, None, None
    if type(meta) is not dict:
        raise ResourceError("meta is not a JSON object")
    version, updated = meta.get("versionId"), meta.get("lastUpdated")
    if not (version is None or type(version) is str):
        raise ResourceError(BAD_VERSION)
    if not (updated is None or type(updated) is str):
        raise ResourceError(BAD_INSTANT.format(name="meta.lastUpdated"))
    return rid, version, updated


def value_error(rid: str, version: str | None, updated: str | None) -> str | None:
    """What is wrong with the formats of id, versionId and lastUpdated, if anything."""
    if not ID(rid):
        return BAD_ID
    if version is not None and not ID(version):
        return BAD_VERSION
    if updated is not None:
        try:
            check_instant(updated, "meta.lastUpdated")
        except ResourceError as exc:
            return str(exc)
    return None


def batch_value_errors(
    ids: list[str], versions: list[str | None], updated: list[str | None]
) -> dict[int, str]:
    """``value_error`` for a whole batch, vectorized with Arrow (per row only when a batch
    holds a bad value).

    Returns:
        row index -> error, for the rows with a bad value.
    """
    ok = pc.and_kleene(
        pc.match_substring_regex(pa.array(ids, pa.string()), ID_PATTERN),
        pc.fill_null(pc.match_substring_regex(pa.array(versions, pa.string()), ID_PATTERN), True),
    )
    times = pa.array(updated, pa.string())
    ok = pc.and_(ok, pc.fill_null(pc.match_substring_regex(times, INSTANT_PATTERN), True))
    if pc.all(ok).as_py():
        try:
            times.cast(pa.timestamp("us", "UTC"))  # real dates: no 2025-02-30
            return {}
        except pa.ArrowInvalid:
            pass
    errors = {}
    for n, (rid, version, last) in enumerate(zip(ids, versions, updated, strict=True)):
        error = value_error(rid, version, last)
        if error:
            errors[n] = error
    return errors


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


def validate_texts(resource_type: str, texts: list[bytes]) -> list[tuple[int, str]]:
    """Full validation of a batch of JSON texts; run in worker processes.

    Returns:
        (position in ``texts``, error) for each invalid resource.
    """
    errors = []
    for position, text in enumerate(texts):
        error = validate_model(orjson.loads(text), resource_type)
        if error is not None:
            errors.append((position, error))
    return errors
