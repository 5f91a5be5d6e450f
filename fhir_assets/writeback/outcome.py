"""What became of each written resource, and the counts reported as metadata."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from .policy import Resource

FAILED = frozenset({"conflict", "invalid", "failed"})
IGNORED_ELEMENTS = frozenset({"id", "meta", "text"})  # set by the server, not by the mapping


@dataclass(frozen=True, slots=True)
class ResourceOutcome:
    """What became of one input resource.

    Attributes:
        index: its position in the input.
        outcome: ``created``, ``updated``, ``unchanged``, ``server-kept`` (conflict, server won),
            ``conflict`` (unresolved), ``invalid``, ``failed``; in a dry run ``would-create`` or
            ``would-update``.
        conflicts: how many times someone else's change got in the way.
        issues: why it failed (validation errors, OperationOutcome texts).
        changed: for ``would-update``, the top-level elements that differ from the server's.
    """

    index: int
    resource_type: str
    identifier: str | None
    outcome: str
    id: str | None = None
    version_id: str | None = None
    conflicts: int = 0
    issues: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


def summarize(outcomes: Iterable[ResourceOutcome]) -> dict[str, int]:
    """Counts for materialization metadata: created, updated, unchanged, conflicts, failed, ..."""
    outcomes = list(outcomes)
    counts = Counter(o.outcome for o in outcomes)
    return {
        "created": counts["created"] + counts["would-create"],
        "updated": counts["updated"] + counts["would-update"],
        "unchanged": counts["unchanged"],
        "conflicts": sum(o.conflicts for o in outcomes),
        "server_kept": counts["server-kept"],
        "invalid": counts["invalid"],
        "failed": sum(counts[name] for name in FAILED),
    }


def comparable(resource: Resource) -> bytes:
    """Canonical JSON of the elements the mapping controls (not id, meta, narrative)."""
    kept = {k: v for k, v in resource.items() if k not in IGNORED_ELEMENTS}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)
