"""Turning a stream of raw input into bounded batches of strict JSON lines.

Input comes as ``Block`` objects (raw NDJSON bytes of a file, whole lines: the fast path) or as
``Entry`` triples ``(source, position, payload)``: where it came from (a file path or a redacted
URL), its line number or position there, and the payload (NDJSON line bytes or text, a parsed
resource mapping, or a ``Tombstone``).

msgspec (strict RFC 8259: no NaN, no trailing comma) reads each line once (``Head``); a line
it refuses goes to the quarantine. The lines that parse are kept as the text they arrived as,
in an Arrow table (``LINES_SCHEMA``) that the warehouse reads in place, together with the four
values the checks need (resourceType, id, meta.versionId, meta.lastUpdated); DuckDB applies
the checks to whole batches (``duckdb_sql.checked_lines``). A block's Arrow column is cut out of the
bytes read from the file with NumPy, with no Python object per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import orjson
import pyarrow as pa

from .arrays import (
    bool_array,
    int32_offsets,
    int_array,
    repeated,
    string_array,
    utf8_array,
)
from .head import Fields, NotJSON, read_head, read_line
from .tombstones import Refused, Tombstone, checked_tombstone
from .validation import ResourceError

QUARANTINE_SCHEMA = pa.schema(
    [
        ("resource_type", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("error", pa.string()),
        ("raw", pa.string()),
    ]
)
# ``n``: position in the batch; ``source``: dictionary-encoded (a block has one source: one
# value and a zero index per line, instead of the path copied per line); ``text``: the JSON
# text (arrow.json: DuckDB takes it as JSON without a cast, that is without parsing it again);
# then the values the checks need (``Fields``).
LINES_SCHEMA = pa.schema(
    [
        ("n", pa.int32()),
        ("source", pa.dictionary(pa.int32(), pa.string())),
        ("line", pa.int64()),
        ("text", pa.json_()),
        ("resource_type", pa.dictionary(pa.int32(), pa.string())),
        ("id", pa.string()),
        ("version_id", pa.string()),
        ("last_updated", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class Block:
    """Raw NDJSON bytes of one source: whole lines, the first of them numbered ``first_line``
    (blank lines count, as in an editor)."""

    source: str
    first_line: int
    data: bytes


@dataclass(frozen=True, slots=True)
class OverlongLine:
    """A line longer than ``FHIR_MAX_LINE_BYTES``, skipped as it was read (never held whole):
    it becomes a quarantine row with its line number and its first bytes."""

    size: int
    limit: int
    head: bytes

    def reason(self) -> str:
        return (
            f"line of {self.size} bytes is longer than FHIR_MAX_LINE_BYTES={self.limit}: "
            f"quarantined unread (only its first {len(self.head)} bytes are kept here)"
        )


Payload = bytes | str | Mapping[str, Any] | Tombstone | Refused | OverlongLine
Entry = tuple[str, int, Payload]
QuarantineRow = tuple[str, str, int, str, str]


@dataclass(slots=True)
class Batch:
    """JSON lines to check and land (``LINES_SCHEMA``), tombstones,
    quarantine rows (``QUARANTINE_SCHEMA`` tuples) and how many entries went in."""

    lines: pa.Table
    tombstones: list[Tombstone] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    entries: int = 0


def build_batches(
    items: Iterable[Block | Entry], resource_type: str, *, rows: int, max_bytes: int
) -> Iterator[Batch]:
    """Check that each line is JSON and yield batches, in input order.

    Args:
        items: blocks and entries, in any mix.
        resource_type: the type being landed (named on quarantine rows).
        rows: entries per batch (blocks are batches of their own, bounded by their size).
        max_bytes: also end an entries batch once its text reaches this size (10k
            Compositions of 7 kB each are 70 MB: rows alone do not bound memory).
    """
    pending = EntryBatch(resource_type)
    for item in items:
        if type(item) is Block:
            if pending.count:
                yield pending.finish()
            yield block_batch(item, resource_type)
            continue
        pending.add(item)  # type: ignore[arg-type]
        if pending.count >= rows or pending.size >= max_bytes:
            yield pending.finish()
    if pending.count:
        yield pending.finish()


def block_batch(block: Block, resource_type: str) -> Batch:
    """One block as a batch, built with NumPy from the block's bytes (no Python object per
    line but the line ``split`` makes and the few values ``Head`` holds)."""
    data = block.data
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()  # the newline of the last line
    fields = Fields()
    try:
        # A Python loop, not map(): the interpreter can hand the GIL to the writer thread
        # between lines, while one C call over the block would keep it ~20 ms.
        fields.add_heads([read_head(part) for part in parts])  # the common case: all objects
        text = line_array(data, parts)
        text.validate(full=True)  # UTF-8, also of the strings msgspec skipped
        keep, bad = None, []
    except (msgspec.DecodeError, pa.ArrowInvalid, RecursionError, UnicodeDecodeError):
        # msgspec raises UnicodeDecodeError for bad UTF-8 inside a string it reads (an id)
        fields = Fields()
        keep, bad = sort_lines(parts, block, resource_type, fields)
        text = line_array(data, parts).filter(bool_array(keep))
    numbers = np.arange(block.first_line, block.first_line + len(parts), dtype=np.int64)
    if keep is not None:
        numbers = numbers[keep]
    source = repeated(block.source, len(text))
    lines = lines_table(source, int_array(numbers), text, fields, resource_type)
    return Batch(lines, quarantine=bad, entries=len(text) + len(bad))


def lines_table(
    sources: pa.Array, numbers: pa.Array, text: pa.Array, fields: Fields, resource_type: str
) -> pa.Table:
    """A table in ``LINES_SCHEMA``: positions, then where each line came from (a dictionary
    array), its JSON text and the values ``fields`` holds for it."""
    columns = [
        int_array(np.arange(len(text), dtype=np.int32), np.int32),
        sources,
        numbers,
        pa.ExtensionArray.from_storage(pa.json_(), text),
    ]
    return pa.table(columns + fields.columns(resource_type), schema=LINES_SCHEMA)


def line_array(data: bytes, parts: list[bytes]) -> pa.StringArray:
    """The lines of ``data`` (``parts``: ``data`` split at \\n, without the empty part after the
    last newline) as an Arrow string array, without their line ends.

    Arrow strings are contiguous, so the line ends (\\n, and the \\r of CRLF) are cut out of
    a copy of the bytes: by ``bytes.replace`` when that is exact (no other \\r), else by a
    NumPy mask; 10-100x faster than Arrow's per-string ``utf8_rtrim``. Without any \\r the
    offsets are the lengths of ``parts`` (half the time of finding the newlines again).
    """
    count = len(parts)
    if data.find(b"\r") < 0:
        offsets = np.zeros(count + 1, np.int64)
        np.cumsum(np.fromiter(map(len, parts), np.int64, count), out=offsets[1:])
        body = pa.py_buffer(data.replace(b"\n", b""))
        return pa.StringArray.from_buffers(count, pa.py_buffer(int32_offsets(offsets)), body)
    raw = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(raw == 10)[:count]
    ends = newlines if len(newlines) == count else np.append(newlines, len(data))
    starts = np.zeros(count, np.int64)
    starts[1:] = ends[:-1] + 1
    carriage = (ends > starts) & (raw[np.maximum(ends - 1, 0)] == 13)
    offsets = np.zeros(count + 1, np.int32)
    np.cumsum(ends - carriage - starts, out=offsets[1:])
    if data.count(b"\r") == np.count_nonzero(carriage):
        body = data.replace(b"\r\n", b"").replace(b"\n", b"")
    else:  # a \r inside a line (JSON whitespace) stays
        cut = np.ones(len(data), bool)
        cut[newlines] = False
        cut[(ends - 1)[carriage]] = False
        body = raw[cut].tobytes()
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(body))


def sort_lines(
    parts: list[bytes], block: Block, resource_type: str, fields: Fields
) -> tuple[list[bool], list[QuarantineRow]]:
    """Which lines of a block to keep (their values go to ``fields``), and quarantine rows for
    those that are not JSON (blank lines are skipped, neither kept nor quarantined)."""
    keep, bad = [], []
    for n, part in enumerate(parts):
        try:
            fields.add_head(read_line(part))
            keep.append(True)
        except NotJSON as exc:
            keep.append(False)
            if part.strip():
                number = block.first_line + n
                bad.append((resource_type, block.source, number, str(exc), text_of(part)))
    return keep, bad


@dataclass
class EntryBatch:
    """A batch being built from entries (parsed resources, single lines, tombstones)."""

    resource_type: str
    sources: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    texts: list[bytes] = field(default_factory=list)
    fields: Fields = field(default_factory=Fields)
    tombstones: list[Tombstone] = field(default_factory=list)
    bad: list[QuarantineRow] = field(default_factory=list)
    count: int = 0
    size: int = 0

    def add(self, entry: Entry) -> None:
        """Take one entry: a line is parsed once to prove it is JSON; a mapping is serialized."""
        self.count += 1
        source, position, payload = entry
        if isinstance(payload, Refused):
            self.bad.append((self.resource_type, source, position, payload.reason, payload.raw))
            return
        try:
            if isinstance(payload, Tombstone):
                self.tombstones.append(checked_tombstone(payload))
                return
            if isinstance(payload, OverlongLine):
                self.bad.append((self.resource_type, source, position, payload.reason(),
                                 text_of(payload.head)))  # fmt: skip
                return
            if type(payload) is bytes or type(payload) is str:
                text = payload.encode() if type(payload) is str else payload
                text = text.rstrip(b"\r\n")
                self.fields.add_head(read_line(text))
            else:
                text = orjson.dumps(payload)
                self.fields.add(payload)
        except UnicodeEncodeError:  # a str with a lone surrogate
            error = "not JSON: not UTF-8 (a lone surrogate)"
            self.bad.append((self.resource_type, source, position, error, text_of(payload)))
            return
        except (NotJSON, ResourceError, TypeError) as exc:  # TypeError: orjson cannot write it
            self.bad.append((self.resource_type, source, position, str(exc), text_of(payload)))
            return
        self.sources.append(source)
        self.numbers.append(position)
        self.texts.append(text)
        self.size += len(text)

    def finish(self) -> Batch:
        """The batch built so far; the builder starts over."""
        text = utf8_array(self.texts)
        sources = string_array(self.sources).dictionary_encode()
        numbers = int_array(self.numbers)
        lines = lines_table(sources, numbers, text, self.fields, self.resource_type)
        batch = Batch(lines, self.tombstones, self.bad, self.count)
        self.sources, self.numbers, self.texts, self.tombstones, self.bad = [], [], [], [], []
        self.fields, self.count, self.size = Fields(), 0, 0
        return batch


def text_of(payload: Payload) -> str:
    """The payload as text for the quarantine table."""
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace").rstrip("\r\n")
    if isinstance(payload, str):  # a lone surrogate cannot be stored: replaced
        return payload.encode("utf-8", "replace").decode().rstrip("\r\n")
    if isinstance(payload, Tombstone):
        return orjson.dumps({"tombstone": payload.id, "versionId": payload.version_id}).decode()
    try:
        return orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson cannot write (a lone surrogate, an int past 64 bits)
        return json.dumps(payload, default=repr)
