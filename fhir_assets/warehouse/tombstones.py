"""Deletions: tombstones, and the deletion Bundles they come in (Bulk Data ``deleted`` files,
history Bundles' DELETE entries)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .validation import ID, ResourceError, check_instant

# request.url of a deletion: [base/]Type/id[/_history/vid] (FHIR R4 3.1.0.1, Bulk Data deleted)
DELETE_URL = re.compile(r"(?:.*/)?([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?/?\Z")
WEAK_ETAG = re.compile(r'W/"([A-Za-z0-9\-.]{1,64})"\Z')


@dataclass(frozen=True, slots=True)
class Refused:
    """An input entry known to be bad before landing (a deletion of no R4/R4B type): landing
    quarantines it with ``reason`` and ``raw``."""

    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deletion of ``id``; without ``last_updated`` the landing's ``deleted_at`` applies."""

    id: str
    version_id: str | None = None
    last_updated: str | None = None


def tombstones_from_bundle(bundle: Mapping[str, Any], resource_type: str) -> list[Tombstone]:
    """Tombstones of a Bulk Data "deleted" Bundle or a history Bundle's DELETE entries.

    Raises:
        ResourceError: the Bundle holds no entries, or an entry is not a DELETE of
            ``resource_type``.
    """
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise ResourceError(f"a Bundle without DELETE entries where a {resource_type} belongs")
    tombstones = []
    for n, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            raise ResourceError(f"Bundle entry {n} has no request object")
        match = DELETE_URL.match(str(request.get("url", "")))
        if request.get("method") != "DELETE" or not match:
            raise ResourceError(f"Bundle entry {n} is not a DELETE request with a Type/id url")
        if match.group(1) != resource_type:
            raise ResourceError(
                f"Bundle entry {n} deletes a {match.group(1)}, not a {resource_type}"
            )
        response = entry.get("response") or {}
        if not isinstance(response, dict):
            raise ResourceError(f"Bundle entry {n} response is not an object")
        modified = response.get("lastModified")
        if modified is not None:
            check_instant(modified, f"Bundle entry {n} response.lastModified")
        etag = WEAK_ETAG.match(str(response.get("etag", "")))
        tombstones.append(Tombstone(match.group(2), etag and etag.group(1), modified))
    return tombstones


def checked_tombstone(tombstone: Tombstone) -> Tombstone:
    """The tombstone, if its id, version and time are valid."""
    if not ID(str(tombstone.id)):
        raise ResourceError("tombstone id is not a FHIR id")
    if tombstone.version_id is not None and not ID(str(tombstone.version_id)):
        raise ResourceError("tombstone versionId is not a FHIR id")
    if tombstone.last_updated is not None:
        check_instant(tombstone.last_updated, "tombstone lastUpdated")
    return tombstone


def deletions_or_raise(resource: Any, resource_type: str, error: ResourceError) -> list[Tombstone]:
    """The tombstones of a deletion Bundle that ``check`` refused (it is no ``resource_type``);
    ``check``'s error for anything else."""
    is_bundle = type(resource) is dict and resource.get("resourceType") == "Bundle"
    if is_bundle and resource_type != "Bundle":
        return tombstones_from_bundle(resource, resource_type)
    raise error
