"""Streaming NDJSON (Bulk Data IG v2 output files): one FHIR resource per line, read line by line.

Nothing here holds a whole file in memory: files are read in fixed-size chunks and split into
lines. A line that is not a JSON object of the file's resource type becomes a :class:`BadLine`
(file, line number, reason, and its raw text for quarantine), never a silent drop. The raw text of
a bad line can hold PHI: keep it for quarantine, never log it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

CHUNK_BYTES = 1 << 20
# FHIR_MAX_LINE_BYTES' default, for the export's line check and the landing alike: a longer
# line is never held whole. Real Binary and DocumentReference lines carry attachments inline
# as base64 (4/3 of the document): scanned records of 20-40 MB are ordinary, so 64 MiB holds a
# 48 MB document, while memory stays bounded by one such line plus one block.
MAX_LINE_BYTES = 64 * 1024**2
# How much of an over-long line is kept (its quarantine row's raw); the rest is never held.
HEAD_BYTES = 1024
# A UTF-8 byte order mark some servers and tools (Excel, PowerShell) put first: no part of the JSON.
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Record:
    """One parsed line: the resource and where it came from."""

    path: Path
    line: int
    resource: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be used, kept for quarantine.

    Attributes:
        path: the NDJSON file.
        line: 1-based line number in that file.
        reason: why it is bad (no resource content).
        raw: the line as it was (may contain PHI: quarantine it, never log it); for a line
            longer than the bound, its first ``HEAD_BYTES`` only (``cut``).
        cut: ``raw`` is the head of a line too long to read whole.
    """

    path: Path
    line: int
    reason: str
    raw: bytes
    cut: bool = False


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A resource the server reports as deleted (Bulk Data v2 ``deleted`` files)."""

    resource_type: str
    id: str
    path: Path
    line: int


def lines(
    path: Path, *, chunk_bytes: int = CHUNK_BYTES, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes | LongLine]]:
    """Yield ``(line number, line)`` for each non-blank line, reading ``chunk_bytes`` at a time.

    Line numbers count every line, blank ones included, so they match an editor's. A last line
    without a newline is still yielded, and a UTF-8 byte order mark that starts the file is
    skipped (as ``fhir-assets land`` skips it: no part of the JSON). A line longer than
    ``max_line_bytes`` is never held whole: it comes as a :class:`LongLine` (its first KiB), so
    a file of one endless line costs neither memory nor time beyond a read.
    """
    number = 0
    held = _Held(max_line_bytes)
    with path.open("rb") as stream:
        if stream.read(len(BOM)) != BOM:
            stream.seek(0)
        while chunk := stream.read(chunk_bytes):
            parts = chunk.split(b"\n")
            tail = parts.pop()
            for index, part in enumerate(parts):
                number += 1
                # only the first part continues a held line; the others are whole in this chunk
                line = held.end(part) if index == 0 else _whole(part, max_line_bytes)
                if isinstance(line, LongLine) or line.strip():
                    yield number, line
            held.add(tail)
    last = held.end(b"")
    if isinstance(last, LongLine) or last.strip():
        yield number + 1, last


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line longer than :func:`lines`' ``max_line_bytes``: its size and first ``HEAD_BYTES``."""

    size: int
    head: bytes


class _Held:
    """The line under way across chunks: its pieces while it fits ``limit``, then its head."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[bytes] = []
        self.size = 0
        self.long = False

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size <= self.limit:
            self.pieces.append(piece)
        elif not self.long:  # past the limit: keep the head only, from now on count
            self.long = True
            self.pieces = [b"".join([*self.pieces, piece[:HEAD_BYTES]])[:HEAD_BYTES]]
        elif len(self.pieces[0]) < HEAD_BYTES:
            self.pieces[0] = (self.pieces[0] + piece[:HEAD_BYTES])[:HEAD_BYTES]

    def end(self, piece: bytes) -> bytes | LongLine:
        """The line that ``piece`` ends (the held pieces and ``piece``), and start a new one."""
        self.add(piece)
        joined = b"".join(self.pieces)
        line = LongLine(self.size, joined) if self.long else joined.rstrip(b"\r")
        self.pieces, self.size, self.long = [], 0, False
        return line


def _whole(part: bytes, limit: int) -> bytes | LongLine:
    return part.rstrip(b"\r") if len(part) <= limit else LongLine(len(part), part[:HEAD_BYTES])


def parse(
    path: Path,
    resource_type: str | None = None,
    *,
    require_id: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Record | BadLine]:
    """Yield a :class:`Record` per good line and a :class:`BadLine` per unusable one.

    Args:
        path: an NDJSON file.
        resource_type: the type every line must have (the manifest's ``type``); ``None``: any.
        require_id: whether a line without ``id`` is bad (resources yes; OperationOutcomes no).
        max_line_bytes: a longer line is bad, and never read whole (``FHIR_MAX_LINE_BYTES``:
            the landing quarantines it too).
    """
    for number, raw in lines(path, max_line_bytes=max_line_bytes):
        if isinstance(raw, LongLine):
            reason = f"a line of {raw.size} bytes, longer than {max_line_bytes} (not read whole)"
            yield BadLine(path, number, reason, raw.head, cut=True)
            continue
        try:
            resource = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield BadLine(path, number, f"not JSON ({exc.msg})", raw)
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            yield BadLine(path, number, "not a FHIR resource (no resourceType)", raw)
        elif resource_type is not None and resource["resourceType"] != resource_type:
            reason = f"a {resource['resourceType']} in a {resource_type} file"
            yield BadLine(path, number, reason, raw)
        elif require_id and not isinstance(resource.get("id"), str):
            yield BadLine(path, number, f"{resource_type or 'resource'} without an id", raw)
        else:
            yield Record(path, number, resource)


def count(path: Path) -> int:
    """The number of non-blank lines (what a manifest's ``count`` counts)."""
    return sum(1 for _ in lines(path))


def scan(
    path: Path,
    resource_type: str | None = None,
    *,
    require_id: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[int, list[BadLine]]:
    """Count the lines of a file and collect its bad lines (``parse``), in one streaming pass."""
    total = 0
    bad: list[BadLine] = []
    for item in parse(path, resource_type, require_id=require_id, max_line_bytes=max_line_bytes):
        total += 1
        if isinstance(item, BadLine):
            bad.append(item)
    return total, bad


def tombstones(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Tombstone | BadLine]:
    """Read a ``deleted`` file: each line a Bundle whose entries are ``DELETE Type/id`` requests.

    Bulk Data IG v2 (``deleted`` in the manifest): the server lists resources deleted since
    ``_since`` as transaction-style Bundles with ``request.method = DELETE``. A line longer than
    ``max_line_bytes`` is a bad line (``parse``).
    """
    for item in parse(path, "Bundle", require_id=False, max_line_bytes=max_line_bytes):
        if isinstance(item, BadLine):
            yield item
            continue
        for entry in item.resource.get("entry") or ():
            request = entry.get("request") if isinstance(entry, dict) else None
            url = str((request or {}).get("url") or "")
            parts = url.split("?", 1)[0].rstrip("/").split("/")
            if len(parts) >= 4 and parts[-2] == "_history":  # Type/id/_history/vid
                parts = parts[:-2]
            if (request or {}).get("method") != "DELETE" or len(parts) < 2:
                yield BadLine(path, item.line, "deleted entry is not a DELETE Type/id", b"")
                continue
            yield Tombstone(parts[-2], parts[-1], path, item.line)


def outcome_issues(path: Path) -> Iterator[tuple[str, str, int]]:
    """Yield ``(severity, text, line)`` per issue of the OperationOutcomes in an error file."""
    for item in parse(path, "OperationOutcome", require_id=False):
        if isinstance(item, BadLine):
            yield "error", f"unreadable error line ({item.reason})", item.line
            continue
        for issue in item.resource.get("issue") or ():
            if not isinstance(issue, dict):
                continue
            details = issue.get("details")
            text = issue.get("diagnostics") or (
                details.get("text") if isinstance(details, dict) else None
            )
            code = issue.get("code", "")
            yield str(issue.get("severity", "error")), f"{code}: {text or ''}".strip(), item.line
