"""ValueSets available to ``memberOf()``: local ValueSet JSON files, read once per views folder.

A warehouse query cannot call a terminology server, so ``memberOf(url)`` compiles to a fixed list
of (system, code) pairs taken from a ValueSet file: its ``expansion.contains`` (nested contains
included) or, without an expansion, the ``compose.include[].concept`` lists (minus
``compose.exclude``). Files live next to the views (``FHIR_VIEWS_DIR``) or in a ``valuesets/``
folder there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ViewDefinitionError

Codes = frozenset[tuple[str, str]]  # (system, code)
HINT = "FHIR_VIEWS_DIR (or a valuesets/ folder next to the view)"


def is_valueset(path: Path) -> bool:
    """Whether a ``*.json`` file in a views folder is a ValueSet rather than a view."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and raw.get("resourceType") == "ValueSet"


def contained(items: list[Any]) -> Iterator[tuple[str, str]]:
    """(system, code) of an expansion's ``contains``, walking nested ``contains``."""
    for item in items:
        if isinstance(item, dict):
            if "code" in item and not item.get("abstract"):
                yield str(item.get("system", "")), str(item["code"])
            yield from contained(item.get("contains", []))


def listed(parts: list[Any], url: str) -> Iterator[tuple[str, str]]:
    """(system, code) of ``compose.include`` (or ``exclude``) entries that list concepts."""
    for part in parts:
        if not part.get("concept"):
            raise ViewDefinitionError(
                f"ValueSet {url}: compose.include of {part.get('system') or part.get('valueSet')}"
                " lists no concepts (a filter or a whole code system needs a terminology "
                "server): give the file an expansion.contains"
            )
        for concept in part["concept"]:
            yield str(part.get("system", "")), str(concept["code"])


def codes_of(raw: dict[str, Any]) -> Codes:
    """The (system, code) pairs a ValueSet resource holds."""
    url = raw.get("url", "?")
    expansion = raw.get("expansion", {}).get("contains")
    if expansion is not None:
        return frozenset(contained(expansion))
    compose = raw.get("compose", {})
    include = frozenset(listed(compose.get("include", []), url))
    return include - frozenset(listed(compose.get("exclude", []), url))


def load_valuesets(folder: Path) -> dict[str, Codes]:
    """ValueSets by ``url`` from ``folder`` and ``folder/valuesets`` (later files win).

    Raises:
        ViewDefinitionError: a ValueSet file has no url or cannot be expanded locally.
    """
    found: dict[str, Codes] = {}
    for path in [*sorted(folder.glob("*.json")), *sorted(folder.glob("valuesets/*.json"))]:
        if not is_valueset(path):
            continue
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw.get("url"), str):
            raise ViewDefinitionError(f"ValueSet file {path} has no url")
        found[raw["url"]] = codes_of(raw)
    return found


def lookup(valuesets: Mapping[str, Codes], url: str) -> Codes | None:
    """The codes of ``url``; a ``|version`` suffix is ignored when only the bare url is known."""
    return valuesets.get(url, valuesets.get(url.split("|")[0]))
