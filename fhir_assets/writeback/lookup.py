"""Find resources on the server by business identifier, many identifiers per search."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..fhir.client import FhirClient
from ..fhir.write import token

SEARCH_CHUNK = 20  # identifiers per search request (``identifier=a,b,c``), to keep URLs short


def find_by_identifier(
    client: FhirClient, system: str, wanted: Iterable[tuple[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    """Every resource carrying each wanted identifier.

    Args:
        client: the FHIR client.
        system: the identifier system all wanted identifiers belong to.
        wanted: ``(resource type, "system|value")`` pairs.

    Returns:
        ``"system|value"`` -> the matching resources (several means duplicates on the server).
    """
    by_type: dict[str, list[str]] = {}
    for resource_type, identifier in wanted:
        by_type.setdefault(resource_type, []).append(identifier)
    found: dict[str, list[dict[str, Any]]] = {i: [] for ids in by_type.values() for i in ids}
    for resource_type, identifiers in by_type.items():
        for start in range(0, len(identifiers), SEARCH_CHUNK):
            chunk = identifiers[start : start + SEARCH_CHUNK]
            values = ",".join(token(*i.split("|", 1)) for i in chunk)
            params = {"identifier": values, "_count": 2 * len(chunk)}
            for resource in client.search(resource_type, params):
                for identifier in resource.get("identifier") or ():
                    key = f"{system}|{identifier.get('value')}"
                    if identifier.get("system") == system and key in found:
                        found[key].append(resource)
    return found
