"""Landing a folder of NDJSON files (an export received as files) through ``land``.

Files are ``*.ndjson`` or ``*.ndjson.gz``, one or many per type, in the folder or below it.
A file's type comes from its name (``Patient.ndjson``, ``Observation-2.ndjson.gz``,
``1.MedicationRequest.ndjson``: the first dot/dash/underscore-separated part that is an R4/R4B
resource type name, in any case) or else from its first line's ``resourceType``, accepted only if
it is an R4/R4B resource type name (``fhir.names``): any such type lands, in a table made on first
sight; a file of any other name is reported with why (``unknown_reason``), never turned into a
table. A directory or unreadable path named like an input file is reported too. A file of Bulk
Data deletion Bundles (``deleted/`` in an export) is a ``Bundle`` file here; its entries land
one by one in their own types' tables (``export_folder.land_deletions``). A
``manifest.json`` (Bulk Data) in the folder gives the ``transactionTime`` used for tombstones.
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from ..fhir.names import BY_LOWER, check_resource_type, is_resource_type, shown
from .batches import Block, Entry
from .inputs import MAX_LINE_BYTES, ndjson_blocks, ndjson_entries
from .landing import LandingOptions, LandingResult, land
from .protocol import Provenance, Warehouse

PATTERNS = ("*.ndjson", "*.ndjson.gz")
# What a caller may wrap around a type's blocks: (type, its files, blocks) -> the same blocks.
Watch = Callable[[str, list[Path], Iterable[Block | Entry]], Iterable[Block | Entry]]


@dataclass(frozen=True, slots=True)
class FolderPlan:
    """The files found per type, the files whose type could not be told (or is no R4/R4B
    type: ``unknown_reason`` says why), and the paths named like input that cannot be read
    (with why)."""

    files: dict[str, list[Path]]
    unknown: list[Path]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def plan_folder(folder: Path) -> FolderPlan:
    """Group the NDJSON files below ``folder`` by resource type (sorted, deterministic)."""
    plan = FolderPlan({}, [])
    for path in sorted({p for pattern in PATTERNS for p in folder.rglob(pattern)}):
        problem = _unreadable(path)
        if problem:
            plan.unreadable.append((path, problem))
            continue
        try:
            resource_type = type_from_name(path) or type_from_content(path)
        except OSError as exc:  # a corrupt .gz, a file gone meanwhile
            plan.unreadable.append((path, f"cannot be read ({type(exc).__name__})"))
            continue
        if resource_type is None:
            plan.unknown.append(path)
        else:
            plan.files.setdefault(resource_type, []).append(path)
    return plan


def _unreadable(path: Path) -> str:
    """Why a path named like an input file cannot be landed, or ``""``."""
    if path.is_dir():
        return "is a directory"
    if not path.is_file():
        return "is not a regular file (a broken link, a device?)"
    if not os.access(path, os.R_OK):
        return "cannot be read (permissions)"
    return ""


def type_from_name(path: Path) -> str | None:
    """The R4/R4B type named in the file name, if any."""
    stem = path.name.removesuffix(".gz").removesuffix(".ndjson")
    for part in re.split(r"[.\-_ ]+", stem):
        if part.lower() in BY_LOWER:
            return BY_LOWER[part.lower()]
    return None


def type_from_content(path: Path) -> str | None:
    """The ``resourceType`` of the first line, if it is an R4/R4B type name (a file of Bulk
    Data deletion Bundles is a ``Bundle`` file: its entries are checked one by one)."""
    found = _first_type(path)
    return found if is_resource_type(found) else None


def _first_type(path: Path) -> object:
    """The first line's ``resourceType`` as it is, or ``None`` (no line, no JSON object)."""
    for _, _, line in itertools.islice(ndjson_entries(path), 1):
        try:
            first = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        return first.get("resourceType") if isinstance(first, dict) else None
    return None


def unknown_reason(path: Path) -> str:
    """Why the type of a file ``plan_folder`` put in ``unknown`` could not be told."""
    try:
        found = _first_type(path)
    except (OSError, EOFError, zlib.error):
        found = None
    named = "its name holds no R4/R4B resource type name"
    if found is None:
        return f"{named}, and its first line is no JSON object with a resourceType"
    return (
        f"{named}, and its first line's resourceType {shown(found)} is not an R4/R4B resource "
        "type name (fhir_assets/fhir/names.py; case-sensitive): not landed"
    )


def transaction_time(folder: Path) -> datetime | None:
    """``transactionTime`` of a Bulk Data ``manifest.json`` in the folder, if there is one."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    value = orjson.loads(manifest.read_bytes()).get("transactionTime")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def folder_entries(
    paths: list[Path],
    root: Path,
    broken: list[str] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Block | Entry]:
    """The lines of several files in turn, in blocks; sources are paths relative to ``root``.
    A file that cannot be read to its end is reported in ``broken`` (``readable_blocks``);
    a line longer than ``max_line_bytes`` comes as a quarantine entry (``inputs``)."""
    for path in paths:
        yield from readable_blocks(path, str(path.relative_to(root)), broken, max_line_bytes)


def readable_blocks(
    path: Path, source: str, broken: list[str] | None, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Block | Entry]:
    """The blocks of one file. Truncated or corrupt gzip data ends the file, not the landing:
    its lines read so far land, the other files too, and ``broken`` names it and says how many
    of its lines were read before the damage (without a list to report into, it raises)."""
    lines = 0
    try:
        for item in ndjson_blocks(path, source=source, max_line_bytes=max_line_bytes):
            lines += item.data.count(b"\n") if isinstance(item, Block) else 1
            yield item
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if broken is None:
            raise
        # gzip hands out no data from a block it could not finish: say what really landed
        read = f"its first {lines} lines were landed" if lines else "none of its lines landed"
        broken.append(
            f"{source}: truncated or corrupt gzip data ({type(exc).__name__}: {exc}); "
            f"{read}; land the file again once it is whole"
        )


def land_folder(
    warehouse: Warehouse,
    plan: FolderPlan,
    root: Path,
    provenance: Provenance,
    options: LandingOptions | None = None,
    broken: list[str] | None = None,
    watch: Watch | None = None,
) -> Iterator[LandingResult]:
    """Land every type of ``plan`` in turn, yielding each type's result when done; files that
    could not be read to their end are added to ``broken`` (``readable_blocks``). ``watch``
    sees each type's blocks on their way in (the CLI's progress bars)."""
    for resource_type, paths in sorted(plan.files.items()):
        check_resource_type(resource_type, source=f"{paths[0].name}")
        limit = (options or LandingOptions()).max_line_bytes
        entries: Iterable[Block | Entry] = folder_entries(paths, root, broken, limit)
        if watch is not None:
            entries = watch(resource_type, paths, entries)
        yield land(warehouse, resource_type, entries, provenance, options)
