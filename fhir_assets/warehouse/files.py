"""Landing a folder of NDJSON files (an export received as files) through ``land``.

Files are ``*.ndjson`` or ``*.ndjson.gz``, one or many per type, in the folder or below it.
A file's type comes from its name (``Patient.ndjson``, ``Observation-2.ndjson.gz``,
``1.MedicationRequest.ndjson``: the first dot/dash/underscore-separated part that is a catalog
type) or else from its first line's ``resourceType``. A file of Bulk Data deletion Bundles
(``deleted/`` in an export) belongs to the type its first entry deletes. A
``manifest.json`` (Bulk Data) in the folder gives the ``transactionTime`` used for tombstones.
"""

from __future__ import annotations

import gzip
import itertools
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from ..catalog import BY_TYPE
from .batches import Block
from .inputs import ndjson_blocks, ndjson_entries
from .landing import LandingOptions, LandingResult, land
from .protocol import Provenance, Warehouse
from .tombstones import DELETE_URL

PATTERNS = ("*.ndjson", "*.ndjson.gz")
_KNOWN = {name.lower(): name for name in BY_TYPE}


@dataclass(frozen=True, slots=True)
class FolderPlan:
    """The files found per type, and the files whose type could not be told."""

    files: dict[str, list[Path]]
    unknown: list[Path]


def plan_folder(folder: Path) -> FolderPlan:
    """Group the NDJSON files below ``folder`` by resource type (sorted, deterministic)."""
    files: dict[str, list[Path]] = {}
    unknown: list[Path] = []
    paths = sorted({p for pattern in PATTERNS for p in folder.rglob(pattern) if p.is_file()})
    for path in paths:
        resource_type = type_from_name(path) or type_from_content(path)
        if resource_type is None:
            unknown.append(path)
        else:
            files.setdefault(resource_type, []).append(path)
    return FolderPlan(files, unknown)


def type_from_name(path: Path) -> str | None:
    """The catalog type named in the file name, if any."""
    stem = path.name.removesuffix(".gz").removesuffix(".ndjson")
    for part in re.split(r"[.\-_ ]+", stem):
        if part.lower() in _KNOWN:
            return _KNOWN[part.lower()]
    return None


def type_from_content(path: Path) -> str | None:
    """The ``resourceType`` of the first line (or, for a deletion Bundle, the deleted type)."""
    for _, _, line in itertools.islice(ndjson_entries(path), 1):
        try:
            first = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(first, dict):
            return None
        if first.get("resourceType") == "Bundle":
            entries = first.get("entry") or [{}]
            url = str(((entries[0] or {}).get("request") or {}).get("url", ""))
            match = DELETE_URL.match(url)
            return match.group(1) if match else None
        found = first.get("resourceType")
        return found if isinstance(found, str) and found.isalpha() else None
    return None


def transaction_time(folder: Path) -> datetime | None:
    """``transactionTime`` of a Bulk Data ``manifest.json`` in the folder, if there is one."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    value = orjson.loads(manifest.read_bytes()).get("transactionTime")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def folder_entries(
    paths: list[Path], root: Path, broken: list[str] | None = None
) -> Iterator[Block]:
    """The lines of several files in turn, in blocks; sources are paths relative to ``root``.
    A file that cannot be read to its end is reported in ``broken`` (``readable_blocks``)."""
    for path in paths:
        yield from readable_blocks(path, str(path.relative_to(root)), broken)


def readable_blocks(path: Path, source: str, broken: list[str] | None) -> Iterator[Block]:
    """The blocks of one file. Truncated or corrupt gzip data ends the file, not the landing:
    its lines read so far land, the other files too, and ``broken`` names it (without a list
    to report into, the error is raised)."""
    try:
        yield from ndjson_blocks(path, source=source)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if broken is None:
            raise
        broken.append(
            f"{source}: truncated or corrupt gzip data ({type(exc).__name__}: {exc}); "
            "the lines before the damage were landed; land the file again once it is whole"
        )


def land_folder(
    warehouse: Warehouse,
    plan: FolderPlan,
    root: Path,
    provenance: Provenance,
    options: LandingOptions | None = None,
    broken: list[str] | None = None,
) -> Iterator[LandingResult]:
    """Land every type of ``plan`` in turn, yielding each type's result when done; files that
    could not be read to their end are added to ``broken`` (``readable_blocks``)."""
    for resource_type, paths in sorted(plan.files.items()):
        entries = folder_entries(paths, root, broken)
        yield land(warehouse, resource_type, entries, provenance, options)
