"""Reading a search's answer: a ``searchset`` Bundle split into its matches and its ``next`` link.

A server may answer a search with something else: an OperationOutcome with HTTP 200 (a search it
refused), a Bundle of another type (``history``, ``collection``...) whose entries are not matches,
or entries and links that are not JSON objects. Each is a :class:`ResponseFormatError` naming what
came; nothing is landed as a match that the server did not send as one, and nothing is dropped
without a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ResponseFormatError, outcome_issues
from .names import shown
from .redaction import scrub

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a search: the matched resources and where the next page is."""

    resources: list[dict[str, Any]]
    next_url: str | None
    total: int | None


def parse_searchset(bundle: Mapping[str, Any], resource_type: str) -> Page:
    """Split a searchset Bundle into matched resources and the ``next`` link.

    Entries whose ``search.mode`` is ``include`` or ``outcome`` are not matches of this search
    (FHIR R4 3.1.1.5.2); an outcome's issues are logged as warnings. A match entry without a
    resource is counted in a warning (a searchset entry must carry one).

    Raises:
        ResponseFormatError: not a Bundle (an OperationOutcome's issues are in the message), a
            Bundle whose ``type`` is not ``searchset``, or entries or links that are not objects.
    """
    what = f"{resource_type} search"
    if bundle.get("resourceType") != "Bundle":
        issues = tuple(scrub(issue, ()) for issue in outcome_issues(bundle))
        raise ResponseFormatError(
            f"{what} answered with {shown(bundle.get('resourceType'))}, not a Bundle"
            + (f": {'; '.join(issues)}" if issues else ""),
            issues=issues,
        )
    if bundle.get("type", "searchset") != "searchset":
        raise ResponseFormatError(
            f"{what} answered with a Bundle of type {shown(bundle.get('type'))}, not a searchset "
            f"(FHIR R4 3.1.1): its entries are not search matches; refusing to land them"
        )
    resources: list[dict[str, Any]] = []
    empty = 0
    for entry in _objects(bundle, "entry", what):
        resource: Any = entry.get("resource")
        search = entry.get("search")
        mode = search.get("mode", "match") if isinstance(search, Mapping) else "match"
        is_outcome = isinstance(resource, Mapping) and (
            resource.get("resourceType") == "OperationOutcome"
        )
        if mode == "outcome" or is_outcome:
            for issue in outcome_issues(resource):
                log.warning("%s: server reported %s", what, scrub(issue, ()))
        elif mode == "match" and resource is None:
            empty += 1
        elif mode == "match":
            resources.append(resource)  # a malformed one is quarantined by the landing
    if empty:
        log.warning("%s: %d match entries carry no resource (nothing to land)", what, empty)
    next_url = next(
        (
            link.get("url")
            for link in _objects(bundle, "link", what)
            if link.get("relation") == "next"
        ),
        None,
    )
    if next_url is not None and not isinstance(next_url, str):
        raise ResponseFormatError(f"{what}: the next link's url is {shown(next_url)}, not a URL")
    total = bundle.get("total")
    # a count or nothing: -1 ("unknown"), true or 2.5 bound nothing (limits.PageBound)
    known = isinstance(total, int) and not isinstance(total, bool) and total >= 0
    return Page(resources, next_url, total if known else None)


def _objects(bundle: Mapping[str, Any], name: str, what: str) -> list[Mapping[str, Any]]:
    """``bundle[name]`` (``entry``, ``link``): a list of JSON objects, or a clear error."""
    items = bundle.get(name) or []
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise ResponseFormatError(f"{what}: the Bundle's {name} is not a list of objects")
    return items
