"""What a folder of exported files says about itself, and its deletion files.

A folder written by ``fhir-assets export`` (or the bulk asset) holds ``export-state.json``: the
server's manifest, whose ``request`` echoes the kick-off URL (so the FHIR base the rows belong
to) and whose ``transactionTime`` is when its deletions happened at the latest. Its ``deleted``
files are Bulk Data deletion Bundles, whose entries may delete resources of several types: each
entry's tombstone lands in its own type's table (``land_deletions``, used by ``fhir-assets
land`` and the Dagster bulk asset alike). ``error`` files are the export's diagnostics, not data.
"""

from __future__ import annotations

import gzip
import itertools
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from ..fhir import ndjson
from ..fhir.bulk.state import STATE_FILE, ExportState
from ..fhir.names import is_resource_type, shown
from .batches import Entry
from .files import FolderPlan
from .inputs import MAX_LINE_BYTES, ndjson_entries
from .landing import LandingOptions, LandingResult, land
from .protocol import Provenance, Warehouse
from .tombstones import Refused, Tombstone

# The bucket of deleted-file lines that are no DELETE Bundle, and of entries deleting a type
# that is no R4/R4B name: quarantined under the Bundle type with their file and line.
UNREADABLE = "~unreadable"
# The kick-off path after the FHIR base (Bulk Data IG: system, Patient and Group levels).
_KICKOFF = re.compile(r"/(?:Patient/|Group/[^/]+/)?\$export\Z")


@dataclass(frozen=True, slots=True)
class ExportOrigin:
    """Whose data an export folder holds (``source_server``) and as of when."""

    source_server: str
    transaction_time: datetime

    @property
    def sync_id(self) -> str:
        """The export's sync id: one per export, so landing it again changes nothing."""
        return "export-" + self.transaction_time.isoformat()


def export_origin(folder: Path) -> ExportOrigin | None:
    """The origin of a finished export in ``folder`` (from its ``export-state.json``), if any.

    Raises:
        ValueError: the state's manifest does not echo a kick-off URL to take the base from.
    """
    if not (folder / STATE_FILE).is_file():
        return None
    manifest = ExportState.load(folder).manifest
    if manifest is None:
        return None
    from ..fhir.client import redact  # here: the HTTP client costs `land` of a plain folder 0.2 s

    kickoff = redact(manifest.request)
    base = _KICKOFF.sub("", kickoff)
    if base == kickoff or not base:
        raise ValueError(
            f"{folder / STATE_FILE}: the manifest's request {kickoff!r} is no $export URL; "
            "pass --server BASE_URL"
        )
    moment = datetime.fromisoformat(manifest.transaction_time.replace("Z", "+00:00"))
    return ExportOrigin(base, moment)


def is_deletion_file(path: Path) -> bool:
    """Whether the file's first line is a Bundle of DELETE requests (a Bulk Data ``deleted``
    file, or a file of such Bundles from elsewhere)."""
    try:
        head = list(itertools.islice(ndjson_entries(path), 1))
    except (EOFError, gzip.BadGzipFile, zlib.error):  # landing reports the file
        return False
    for _, _, line in head:
        try:
            first = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        entries = first.get("entry") if isinstance(first, dict) else None
        if first.get("resourceType") != "Bundle" or not isinstance(entries, list) or not entries:
            return False
        request = entries[0].get("request") if isinstance(entries[0], dict) else None
        return isinstance(request, dict) and request.get("method") == "DELETE"
    return False


def split_deletions(plan: FolderPlan, root: Path) -> tuple[FolderPlan, list[Path]]:
    """The plan without its deletion files (landed entry by entry, ``land_deletions``) and
    without an export folder's ``error`` files; and the deletion files."""
    errors = root / "error" if (root / STATE_FILE).is_file() else None
    files: dict[str, list[Path]] = {}
    deleted: list[Path] = []
    for resource_type, paths in plan.files.items():
        for path in paths:
            if errors is not None and path.is_relative_to(errors):
                continue
            if is_deletion_file(path):
                deleted.append(path)
            else:
                files.setdefault(resource_type, []).append(path)
    unknown = [p for p in plan.unknown if errors is None or not p.is_relative_to(errors)]
    return FolderPlan(files, unknown, plan.unreadable), sorted(deleted)


def tombstone_entries(
    paths: list[Path], root: Path, resource_type: str, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Entry]:
    """The deletions of ``resource_type`` in ``deleted`` files (Bundles that may mix types),
    read lazily; an unreadable line, or an entry deleting no R4/R4B type, is passed on as it is
    (``UNREADABLE``), so landing quarantines it with its line (a line longer than
    ``max_line_bytes`` with that reason and its head)."""
    for path in paths:
        source = str(path.relative_to(root))
        for item in ndjson.tombstones(path, max_line_bytes):
            kind = _bucket(item)
            if kind != resource_type:
                continue
            if isinstance(item, ndjson.Tombstone) and kind != UNREADABLE:
                yield (source, item.line, Tombstone(item.id))
            elif isinstance(item, ndjson.BadLine) and item.cut:
                yield (source, item.line, Refused(item.reason, item.raw.decode(errors="replace")))
            elif isinstance(item, ndjson.BadLine):
                yield (source, item.line, item.raw or item.reason.encode())
            else:
                entry = {"request": {"method": "DELETE", "url": f"{item.resource_type}/{item.id}"}}
                why = (f"deleted entry names resource type {shown(item.resource_type)}, which is "
                       "not an R4/R4B resource type name: not landed")  # fmt: skip
                yield (source, item.line, Refused(why, orjson.dumps(entry).decode()))


def _bucket(item: ndjson.Tombstone | ndjson.BadLine) -> str:
    """The type an item of a deleted file lands under (``UNREADABLE``: quarantined)."""
    if isinstance(item, ndjson.Tombstone) and is_resource_type(item.resource_type):
        return item.resource_type
    return UNREADABLE


def deleted_types(paths: list[Path], max_line_bytes: int = MAX_LINE_BYTES) -> set[str]:
    """The types the deletion files delete, each an R4/R4B type name, and ``UNREADABLE`` for
    lines that are no deletion Bundle or entries deleting a type that is no such name (those
    are quarantined entry by entry, never the whole file)."""
    return {_bucket(t) for path in paths for t in ndjson.tombstones(path, max_line_bytes)}


def land_deletions(
    warehouse: Warehouse,
    paths: list[Path],
    root: Path,
    provenance: Provenance,
    options: LandingOptions | None = None,
) -> Iterator[LandingResult]:
    """Land the tombstones of deletion files, each entry into its own type's table (a file
    may mix types, whatever its first entry deletes); unreadable lines and entries of no
    R4/R4B type are quarantined under the Bundle type, never dropped. Land them after the
    resources, so that a resource deleted in the same export ends deleted (``merge_sql`` rule 4)."""
    limit = (options or LandingOptions()).max_line_bytes  # FHIR_MAX_LINE_BYTES
    types = deleted_types(paths, limit)
    for resource_type in sorted(types - {UNREADABLE}):
        entries = tombstone_entries(paths, root, resource_type, limit)
        yield land(warehouse, resource_type, entries, provenance, options)
    if UNREADABLE in types:
        entries = tombstone_entries(paths, root, UNREADABLE, limit)
        yield land(warehouse, "Bundle", entries, provenance, options)


def combine_by_type(results: Iterable[LandingResult]) -> list[LandingResult]:
    """One result per resource type (a type's resources and its tombstones land apart),
    summed, in the order the types first appear."""
    combined: dict[str, LandingResult] = {}
    for r in results:
        before = combined.get(r.resource_type)
        if before is not None:
            r = LandingResult(
                r.resource_type,
                *(getattr(before, f) + getattr(r, f) for f in _COUNTS),
            )
        combined[r.resource_type] = r
    return list(combined.values())


_COUNTS = ("seen", "landed", "updated", "deleted", "unchanged", "quarantined", "seconds")
