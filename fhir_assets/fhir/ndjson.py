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
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which some servers and tools write first


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
        raw: the line as it was (may contain PHI: quarantine it, never log it).
    """

    path: Path
    line: int
    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A resource the server reports as deleted (Bulk Data v2 ``deleted`` files)."""

    resource_type: str
    id: str
    path: Path
    line: int


def lines(path: Path, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, line)`` for each non-blank line, reading ``chunk_bytes`` at a time.

    Line numbers count every line, blank ones included, so they match an editor's. A last line
    without a newline is still yielded, and a UTF-8 byte order mark that starts the file is
    skipped (as ``fhir-assets land`` skips it: no part of the JSON).
    """
    number = 0
    carry = b""
    with path.open("rb") as stream:
        if stream.read(len(BOM)) != BOM:
            stream.seek(0)
        while chunk := stream.read(chunk_bytes):
            parts = (carry + chunk).split(b"\n")
            carry = parts.pop()
            for part in parts:
                number += 1
                if part.strip():
                    yield number, part.rstrip(b"\r")
    if carry.strip():
        yield number + 1, carry.rstrip(b"\r")


def parse(
    path: Path, resource_type: str | None = None, *, require_id: bool = True
) -> Iterator[Record | BadLine]:
    """Yield a :class:`Record` per good line and a :class:`BadLine` per unusable one.

    Args:
        path: an NDJSON file.
        resource_type: the type every line must have (the manifest's ``type``); ``None``: any.
        require_id: whether a line without ``id`` is bad (resources yes; OperationOutcomes no).
    """
    for number, raw in lines(path):
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
    path: Path, resource_type: str | None = None, *, require_id: bool = True
) -> tuple[int, list[BadLine]]:
    """Count the lines of a file and collect its bad lines (``parse``), in one streaming pass."""
    total = 0
    bad: list[BadLine] = []
    for item in parse(path, resource_type, require_id=require_id):
        total += 1
        if isinstance(item, BadLine):
            bad.append(item)
    return total, bad


def tombstones(path: Path) -> Iterator[Tombstone | BadLine]:
    """Read a ``deleted`` file: each line a Bundle whose entries are ``DELETE Type/id`` requests.

    Bulk Data IG v2 (``deleted`` in the manifest): the server lists resources deleted since
    ``_since`` as transaction-style Bundles with ``request.method = DELETE``.
    """
    for item in parse(path, "Bundle", require_id=False):
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
