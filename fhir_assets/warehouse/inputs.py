"""Reading landing input: NDJSON files in blocks (the fast path) or line by line, and parsed
resources as entries."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .batches import Block, Entry

BLOCK_BYTES = 8_000_000
# A UTF-8 byte order mark some tools (Excel, PowerShell) put first; it is no part of the JSON.
BOM = b"\xef\xbb\xbf"


def ndjson_blocks(
    path: Path, source: str | None = None, size: int = BLOCK_BYTES
) -> Iterator[Block]:
    """The lines of an NDJSON file in blocks of about ``size`` bytes (whole lines).

    ``.gz`` files are decompressed on the fly; a leading UTF-8 BOM is skipped; ``source``
    defaults to the path.
    """
    name = source or str(path)
    opener = gzip.open if path.suffix == ".gz" else open
    first = 1
    with opener(path, "rb") as stream:
        if stream.read(len(BOM)) != BOM:
            stream.seek(0)
        while data := stream.read(size):
            if not data.endswith(b"\n"):
                data += stream.readline()  # the rest of the last line (resized in place)
            yield Block(name, first, data)
            first += data.count(b"\n")


def ndjson_entries(path: Path, source: str | None = None) -> Iterator[Entry]:
    """``(source, line number, line bytes)`` for each non-blank line of an NDJSON file.

    ``.gz`` files are decompressed on the fly; ``source`` defaults to the path.
    """
    name = source or str(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if number == 1:
                line = line.removeprefix(BOM)
            if line and not line.isspace():
                yield (name, number, line)


def resource_entries(source: str, resources: Iterable[Mapping[str, Any]]) -> Iterator[Entry]:
    """``(source, position, resource)`` for parsed resources, e.g. one search page."""
    for position, resource in enumerate(resources, 1):
        yield (source, position, resource)
