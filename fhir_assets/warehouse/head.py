"""Reading one NDJSON line: strict JSON, and only the values the fast checks need.

msgspec reads a line into ``Head``: it checks the JSON syntax of the whole line (RFC 8259,
strictly) but builds only resourceType, id and meta as Python values. ``Fields`` collects those
values, batch by batch, for DuckDB's checks (``duckdb_sql.checked_lines``); ``decode_json`` reads a
whole line where Python needs the resource (rechecks, full validation).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa

from .arrays import repeated, string_array

# Stands for a value that is not a string (an id that is a number, a meta that is a list): no
# id or instant pattern matches it, so the line fails the checks and check() names the problem.
NOT_TEXT = "\x00"


class Meta(msgspec.Struct, gc=False):
    """What the checks read of ``meta``; its other members are skipped, not built."""

    versionId: Any = None
    lastUpdated: Any = None


class Head(msgspec.Struct, gc=False):
    """What the checks read of a resource. msgspec checks the JSON syntax of the whole line
    (strictly: no NaN, no trailing comma) but builds only these members, 2.5x faster than
    orjson building the whole resource; with a repeated key the last value counts, as in orjson.
    A ``meta`` that is no object fails like a line that is no object: ``read_line`` then reads
    the line whole and ``validation.check`` names what is wrong.
    It does not check the UTF-8 of the strings it skips: Arrow does (``batches.block_batch``).
    Not tracked by the garbage collector (``gc=False``): decoded JSON holds no cycles."""

    resourceType: Any = None
    id: Any = None
    meta: Meta | None = None


read_head = msgspec.json.Decoder(Head).decode


class Fields:
    """resourceType, id, meta.versionId and meta.lastUpdated of each line, as
    ``validation.check`` sees them."""

    __slots__ = ("ids", "times", "types", "versions")

    def __init__(self) -> None:
        self.types: list[Any] = []
        self.ids: list[Any] = []
        self.versions: list[Any] = []
        self.times: list[Any] = []

    def add_head(self, head: Head | None) -> None:
        """Take the values of one line (``None``: a JSON value that is not an object, or an
        object whose ``meta`` is no object)."""
        if head is None:
            for values in (self.types, self.ids, self.versions, self.times):
                values.append(None)
            return
        meta = head.meta
        self.types.append(head.resourceType)
        self.ids.append(head.id)
        self.versions.append(None if meta is None else meta.versionId)
        self.times.append(None if meta is None else meta.lastUpdated)

    def add_heads(self, heads: list[Head]) -> None:
        """Take the values of whole lines of a block, a comprehension per value (a third less
        time than a call of ``add_head`` per line)."""
        metas = [head.meta for head in heads]
        self.types += [head.resourceType for head in heads]
        self.ids += [head.id for head in heads]
        self.versions += [None if meta is None else meta.versionId for meta in metas]
        self.times += [None if meta is None else meta.lastUpdated for meta in metas]

    def add(self, resource: Any) -> None:
        """Take the values of one parsed resource."""
        if type(resource) is not dict:
            self.add_head(None)
            return
        meta = resource.get("meta")
        if type(meta) is dict:
            meta = Meta(meta.get("versionId"), meta.get("lastUpdated"))
        elif meta is not None:  # no id or instant pattern matches NOT_TEXT: check() says why
            meta = Meta(NOT_TEXT, NOT_TEXT)
        self.add_head(Head(resource.get("resourceType"), resource.get("id"), meta))

    def columns(self, resource_type: str) -> list[pa.Array]:
        """The four columns of ``LINES_SCHEMA``; values that are not strings become
        ``NOT_TEXT``. The resourceType column is a dictionary array: when every line has
        ``resource_type`` (the common case, found by one C-level count), one value."""
        types = self.types
        if types.count(resource_type) == len(types):
            kinds: pa.Array = repeated(resource_type, len(types))
        else:
            kinds = text_column(types).dictionary_encode()
        return [kinds] + [text_column(v) for v in (self.ids, self.versions, self.times)]


def text_column(values: list[Any]) -> pa.Array:
    """A string array of ``values``, with ``NOT_TEXT`` for those that are not strings."""
    try:
        return string_array(values)
    except TypeError:  # also takes bytes, but JSON values are never bytes
        return string_array([v if v is None or type(v) is str else NOT_TEXT for v in values])


class NotJSON(ValueError):
    """A line that is not JSON (or not UTF-8)."""


def read_line(line: bytes) -> Head | None:
    """The ``Head`` of one line, ``None`` for JSON that is not an object.

    Raises:
        NotJSON: the line is not UTF-8 JSON (or nests deeper than the parser goes).
    """
    try:
        line.decode()
        return read_head(line)
    except UnicodeDecodeError as exc:
        raise NotJSON(f"not JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except msgspec.ValidationError:  # JSON, but no object (or meta): check() says what
        decode_json(line)
        return None
    except msgspec.DecodeError as exc:
        raise NotJSON(f"not JSON: {exc}") from None
    except RecursionError:
        raise NotJSON("not JSON this parser reads: nested too deeply") from None


def decode_json(text: bytes | str) -> Any:
    """A whole JSON value, numbers beyond a double's range read as infinity (RFC 8259 allows
    them; ``Head`` skips them alike).

    Raises:
        NotJSON: it is not JSON, or nests deeper than the parser goes.
    """
    try:
        return whole_json(text)
    except msgspec.DecodeError as exc:
        raise NotJSON(f"not JSON: {exc}") from None
    except RecursionError:
        raise NotJSON("not JSON this parser reads: nested too deeply") from None


whole_json = msgspec.json.Decoder(float_hook=float).decode
