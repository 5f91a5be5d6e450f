"""Reading landing input: NDJSON files in blocks (the fast path) or line by line, and parsed
resources as entries."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..fhir.ndjson import BOM, HEAD_BYTES, MAX_LINE_BYTES
from .batches import Block, Entry, OverlongLine

BLOCK_BYTES = 8_000_000
SKIP_BYTES = 1 << 20


def ndjson_blocks(
    path: Path, source: str | None = None, size: int = BLOCK_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Block | Entry]:  # fmt: skip
    """The lines of an NDJSON file in blocks of about ``size`` bytes (whole lines).

    ``.gz`` files are decompressed on the fly; a leading UTF-8 BOM is skipped; ``source``
    defaults to the path. A line longer than ``max_line_bytes`` is never held whole: it is
    skipped as it is read and comes out as an :class:`OverlongLine` entry (a quarantine row
    with its line number), between the blocks of its neighbours.
    """
    name = source or str(path)
    opener = gzip.open if path.suffix == ".gz" else open
    first = 1
    with opener(path, "rb") as stream:
        if stream.read(len(BOM)) != BOM:
            stream.seek(0)
        while data := stream.read(size):
            long: OverlongLine | None = None
            if not data.endswith(b"\n"):
                data += stream.readline(max_line_bytes + 1)  # the rest of the last line
                cut = data.rfind(b"\n") + 1
                if not data.endswith(b"\n") and len(data) - cut > max_line_bytes:
                    long = _skip_line(stream, data[cut:], max_line_bytes)
                    data = data[:cut]
            yield from _split_long(name, first, data, max_line_bytes)
            first += data.count(b"\n")
            if long is not None:
                yield (name, first, long)
                first += 1


def _skip_line(stream: IO[bytes], start: bytes, limit: int) -> OverlongLine:
    """Read the rest of an over-long line without keeping it; its first ``HEAD_BYTES`` stay."""
    size = len(start)
    while (part := stream.readline(SKIP_BYTES)) and not part.endswith(b"\n"):
        size += len(part)
    size += len(part.rstrip(b"\n"))
    return OverlongLine(size, limit, start[:HEAD_BYTES])


def _split_long(name: str, first: int, data: bytes, limit: int) -> Iterator[Block | Entry]:
    """``data`` (whole lines) as one block, or as blocks around its lines longer than ``limit``
    (only possible when ``data`` is longer than ``limit``)."""
    if len(data) <= limit:
        if data:
            yield Block(name, first, data)
        return
    kept, kept_line = 0, first  # where the pending block starts, and its first line number
    start, line = 0, first
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if end - start > limit:
            if kept < start:
                yield Block(name, kept_line, data[kept:start])
            yield (name, line, OverlongLine(end - start, limit, data[start : start + HEAD_BYTES]))
            kept, kept_line = end + 1, line + 1
        start, line = end + 1, line + 1
    if kept < len(data):
        yield Block(name, kept_line, data[kept:])


def ndjson_entries(
    path: Path, source: str | None = None, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Entry]:
    """``(source, line number, line bytes)`` for each non-blank line of an NDJSON file.

    ``.gz`` files are decompressed on the fly; ``source`` defaults to the path. A line longer
    than ``max_line_bytes`` comes out as an :class:`OverlongLine`, never held whole.
    """
    name = source or str(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        number = 0
        while line := lines.readline(max_line_bytes + 1):
            number += 1
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                yield (name, number, _skip_line(lines, line, max_line_bytes))
                continue
            if number == 1:
                line = line.removeprefix(BOM)
            if line and not line.isspace():
                yield (name, number, line)


def resource_entries(source: str, resources: Iterable[Mapping[str, Any]]) -> Iterator[Entry]:
    """``(source, position, resource)`` for parsed resources, e.g. one search page."""
    for position, resource in enumerate(resources, 1):
        yield (source, position, resource)
