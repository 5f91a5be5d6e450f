"""Turning a stream of raw entries into bounded Arrow batches plus quarantine rows.

An entry is ``(source, position, payload)``: where it came from (a file path or a redacted
URL), its line number or position there, and the payload (NDJSON line bytes or text, a parsed
resource mapping, or a ``Tombstone``). This loop is the hot path of landing: one ``orjson``
parse and a few dictionary lookups per line, the original text kept as the stored resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .sql import STAGE_COLUMNS
from .validation import ID, ResourceError, batch_value_errors, check_instant, check_shape

QUARANTINE_SCHEMA = pa.schema(
    [
        ("resource_type", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("error", pa.string()),
        ("raw", pa.string()),
    ]
)
STAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("version_id", pa.string()),
        ("last_updated", pa.string()),
        ("resource", pa.string()),
        ("deleted", pa.bool_()),
    ]
)
assert tuple(STAGE_SCHEMA.names) == STAGE_COLUMNS  # noqa: S101 (import-time layout guard)

# request.url of a deletion: [base/]Type/id[/_history/vid] (FHIR R4 3.1.0.1, Bulk Data deleted)
DELETE_URL = re.compile(r"(?:.*/)?([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?/?\Z")
WEAK_ETAG = re.compile(r'W/"([A-Za-z0-9\-.]{1,64})"\Z')


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deletion of ``id``; without ``last_updated`` the landing's ``deleted_at`` applies."""

    id: str
    version_id: str | None = None
    last_updated: str | None = None


Payload = bytes | str | Mapping[str, Any] | Tombstone
Entry = tuple[str, int, Payload]


@dataclass(slots=True)
class Batch:
    """Rows ready to stage (``STAGE_SCHEMA``), the entries behind each resource row (for full
    validation), quarantine rows, and how many entries went in."""

    rows: pa.Table
    texts: list[bytes | str]
    origins: list[Entry]
    quarantine: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    entries: int = 0


def tombstones_from_bundle(bundle: Mapping[str, Any], resource_type: str) -> list[Tombstone]:
    """Tombstones of a Bulk Data "deleted" Bundle or a history Bundle's DELETE entries.

    Raises:
        ResourceError: an entry is not a DELETE of ``resource_type``.
    """
    tombstones = []
    for n, entry in enumerate(bundle.get("entry") or ()):
        request = entry.get("request") or {} if isinstance(entry, dict) else {}
        match = DELETE_URL.match(str(request.get("url", "")))
        if request.get("method") != "DELETE" or not match:
            raise ResourceError(f"Bundle entry {n} is not a DELETE request with a Type/id url")
        if match.group(1) != resource_type:
            raise ResourceError(
                f"Bundle entry {n} deletes a {match.group(1)}, not a {resource_type}"
            )
        response = entry.get("response") or {}
        modified = response.get("lastModified")
        if modified is not None:
            check_instant(modified, f"Bundle entry {n} response.lastModified")
        etag = WEAK_ETAG.match(str(response.get("etag", "")))
        tombstones.append(Tombstone(match.group(2), etag and etag.group(1), modified))
    return tombstones


def text_of(payload: Payload) -> str:
    """The payload as text for the quarantine table."""
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace").rstrip("\r\n")
    if isinstance(payload, str):
        return payload.rstrip("\r\n")
    if isinstance(payload, Tombstone):
        return orjson.dumps({"tombstone": payload.id, "versionId": payload.version_id}).decode()
    return orjson.dumps(payload, default=str).decode()


def build_batches(
    entries: Iterable[Entry],
    resource_type: str,
    *,
    rows: int,
    deleted_at: str,
    max_bytes: int | None = None,
) -> Iterator[Batch]:
    """Check each entry (fast mode) and yield batches of at most ``rows`` entries.

    Args:
        entries: ``(source, position, payload)`` triples.
        resource_type: the type being landed; others are quarantined.
        rows: entries per batch (bounds memory).
        deleted_at: ISO instant for tombstones that carry no time of their own.
        max_bytes: also end a batch once its resource text reaches this size (10k
            Compositions of 7 kB each are 70 MB: rows alone do not bound memory).
    """
    limit = max_bytes or 1 << 62
    size = 0
    ids: list[str] = []
    versions: list[str | None] = []
    updated: list[str | None] = []
    texts: list[bytes | str] = []
    origins: list[Entry] = []
    gone: list[Tombstone] = []
    bad: list[tuple[str, str, int, str, str]] = []
    count = 0
    for entry in entries:
        count += 1
        payload = entry[2]
        try:
            # Lines (bytes/str) are by far the common case: test their exact type first.
            if type(payload) is bytes or type(payload) is str:
                resource, text = orjson.loads(payload), payload
            elif isinstance(payload, Tombstone):
                gone.append(checked_tombstone(payload))
                resource = text = None
            else:
                resource, text = payload, orjson.dumps(payload)
            if text is not None:
                try:
                    rid, version, last = check_shape(resource, resource_type)
                except ResourceError as error:
                    gone.extend(deletions_or_raise(resource, resource_type, error))
                else:
                    ids.append(rid)
                    versions.append(version)
                    updated.append(last)
                    texts.append(text)
                    origins.append(entry)
                    size += len(text)
        except orjson.JSONDecodeError as exc:
            bad.append((resource_type, entry[0], entry[1], f"not JSON: {exc}", text_of(payload)))
        except ResourceError as exc:
            bad.append((resource_type, entry[0], entry[1], str(exc), text_of(payload)))
        if count == rows or size >= limit:
            yield finish_batch(resource_type, ids, versions, updated, texts, origins, gone, bad,
                               count, deleted_at)  # fmt: skip
            ids, versions, updated, texts, origins, gone, bad = [], [], [], [], [], [], []
            count = size = 0
    if count:
        yield finish_batch(resource_type, ids, versions, updated, texts, origins, gone, bad,
                           count, deleted_at)  # fmt: skip


def finish_batch(
    resource_type: str,
    ids: list[str],
    versions: list[str | None],
    updated: list[str | None],
    texts: list[bytes | str],
    origins: list[Entry],
    gone: list[Tombstone],
    bad: list[tuple[str, str, int, str, str]],
    count: int,
    deleted_at: str,
) -> Batch:
    """Check the batch's ids, versions and times at once, move bad rows to the quarantine,
    and build the Arrow table."""
    errors = batch_value_errors(ids, versions, updated)
    if errors:
        for n, error in errors.items():
            source, position, payload = origins[n]
            bad.append((resource_type, source, position, error, text_of(payload)))
        keep = [n for n in range(len(ids)) if n not in errors]
        ids, versions, updated = (
            [ids[n] for n in keep],
            [versions[n] for n in keep],
            [updated[n] for n in keep],
        )
        texts, origins = [texts[n] for n in keep], [origins[n] for n in keep]
    rows = stage_table(ids, versions, updated, texts, gone, deleted_at)
    return Batch(rows, texts, origins, bad, count)


def deletions_or_raise(resource: Any, resource_type: str, error: ResourceError) -> list[Tombstone]:
    """The tombstones of a deletion Bundle that ``check`` refused (it is no ``resource_type``);
    ``check``'s error for anything else."""
    is_bundle = type(resource) is dict and resource.get("resourceType") == "Bundle"
    if is_bundle and resource_type != "Bundle":
        return tombstones_from_bundle(resource, resource_type)
    raise error


def checked_tombstone(tombstone: Tombstone) -> Tombstone:
    """The tombstone, if its id, version and time are valid."""
    if not ID(str(tombstone.id)):
        raise ResourceError("tombstone id is not a FHIR id")
    if tombstone.version_id is not None and not ID(str(tombstone.version_id)):
        raise ResourceError("tombstone versionId is not a FHIR id")
    if tombstone.last_updated is not None:
        check_instant(tombstone.last_updated, "tombstone lastUpdated")
    return tombstone


def stage_table(
    ids: list[str],
    versions: list[str | None],
    updated: list[str | None],
    texts: list[bytes | str],
    gone: list[Tombstone],
    deleted_at: str,
) -> pa.Table:
    """An Arrow table in ``STAGE_SCHEMA``: resource rows, then tombstones (resource NULL)."""
    # Lines keep their newline; Arrow strips it column-wide far faster than Python per line.
    resource = pa.array(texts, pa.binary()).cast(pa.string())
    resource = pc.utf8_rtrim(resource, characters="\r\n")
    if gone:
        ids = ids + [t.id for t in gone]
        versions = versions + [t.version_id for t in gone]
        updated = updated + [t.last_updated or deleted_at for t in gone]
        resource = pa.concat_arrays([resource, pa.nulls(len(gone), pa.string())])
    return pa.table(
        [
            pa.array(ids, pa.string()),
            pa.array(versions, pa.string()),
            pa.array(updated, pa.string()),
            resource,
            pa.array([False] * len(texts) + [True] * len(gone), pa.bool_()),
        ],
        schema=STAGE_SCHEMA,
    )
