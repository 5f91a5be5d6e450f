"""The one landing code path: raw FHIR entries of one type -> validated, merged raw table.

Used by the raw Dagster assets (REST search), ``fhir-assets land DIR`` (NDJSON files) and the
bulk export and REST sync code. Call ``land`` once per resource type and source::

    from fhir_assets.warehouse.landing import LandingOptions, land
    from fhir_assets.warehouse.protocol import Provenance

    result = land(warehouse, "Observation", entries, Provenance.now(base_url, run_id))

``entries`` is any iterable of ``(source, position, payload)`` (see ``batches.Entry``):
    * ``source``: the file path or redacted URL (no query string: it is stored and shown);
    * ``position``: line number in the file, or position in the page/sync (1-based);
    * ``payload``: NDJSON line as ``bytes``/``str`` (kept verbatim as the stored resource), a
      parsed resource ``dict`` (re-serialized with orjson), a ``batches.Tombstone``, or a
      deletion ``Bundle`` line (Bulk Data ``deleted`` file / history DELETE entries).
``ndjson_entries(path)`` and ``resource_entries(source, resources)`` build them.

Semantics (``sql.py``): MERGE by (source_server, id), the newest version wins, an older or
equal one never overwrites, tombstones apply, re-landing changes nothing. Whatever fails a
check goes to ``fhir_raw._quarantine`` with its raw text, the error and source/position; it is
never dropped. Memory stays bounded: entries are consumed lazily in batches of
``LandingOptions.batch_rows`` (or ``batch_bytes``); one batch is built while the previous one is
written.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow as pa

from .batches import QUARANTINE_SCHEMA, Batch, Entry, build_batches, text_of
from .protocol import LandingSession, Provenance, Warehouse
from .validation import FAST, MODES, validate_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LandingOptions:
    """How to land.

    Attributes:
        validation: ``fast`` (structural checks, default) or ``full`` (plus R4B models in
            ``workers`` processes); see ``validation.py``.
        batch_rows: entries per batch; bounds memory (about rows x line size, twice).
        batch_bytes: fast mode also ends a batch at this much resource text, so that large
            resources (Composition, DocumentReference) keep memory bounded too.
        workers: processes for full validation (default: one per CPU).
        history: also keep every distinct version in ``fhir_raw.<type>_history`` (costs a
            second write of each batch).
    """

    validation: str = FAST
    batch_rows: int = 10_000
    batch_bytes: int = 8_000_000
    workers: int | None = None
    history: bool = False

    def __post_init__(self) -> None:
        if self.validation not in MODES:
            raise ValueError(f"validation must be one of {MODES}, not {self.validation!r}")
        if self.batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")


@dataclass(frozen=True, slots=True)
class LandingResult:
    """Counts of one landing. ``seen`` = every entry read (valid or not)."""

    resource_type: str
    seen: int
    landed: int
    updated: int
    deleted: int
    unchanged: int
    quarantined: int
    seconds: float

    def metadata(self) -> dict[str, Any]:
        """Counts for Dagster materialization metadata (no resource content)."""
        return {
            "seen": self.seen,
            "landed": self.landed,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "invalid_share": round(self.quarantined / self.seen, 6) if self.seen else 0.0,
            "landing_s": round(self.seconds, 3),
        }


def land(
    warehouse: Warehouse,
    resource_type: str,
    entries: Iterable[Entry],
    provenance: Provenance,
    options: LandingOptions | None = None,
) -> LandingResult:
    """Land entries of one resource type into ``fhir_raw.<type lower>``.

    Args:
        warehouse: an open ``DuckDBWarehouse`` or ``SnowflakeWarehouse``.
        resource_type: the FHIR type; entries of another type are quarantined.
        entries: ``(source, position, payload)`` triples, consumed lazily (see module doc).
        provenance: server, sync id and times stored on the rows.
        options: validation mode, batch size, workers.

    Returns:
        what happened, entry by entry: seen = landed + updated + deleted + unchanged +
        quarantined (a deletion Bundle line counts once per tombstone it holds).

    Raises:
        Whatever the warehouse raises; batches merged before the error stay (re-landing is
        safe).
    """
    options = options or LandingOptions()
    started = time.monotonic()
    staged = quarantined = 0
    with ExitStack() as stack:
        session = stack.enter_context(
            warehouse.open_landing(resource_type.lower(), provenance, history=options.history)
        )
        writer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="fhir-landing"))
        batches = checked_batches(entries, resource_type, options, provenance.tombstone_time, stack)
        pending: Future[None] | None = None
        for batch in batches:
            staged += batch.rows.num_rows
            quarantined += len(batch.quarantine)
            if pending is not None:
                pending.result()  # at most one batch written while the next is built
            pending = writer.submit(write, session, batch)
        if pending is not None:
            pending.result()
        outcome = session.finish()
    unchanged = staged - outcome.inserted - outcome.updated - outcome.deleted
    return LandingResult(
        resource_type,
        staged + quarantined,
        outcome.inserted,
        outcome.updated,
        outcome.deleted,
        unchanged,
        quarantined,
        time.monotonic() - started,
    )


def write(session: LandingSession, batch: Batch) -> None:
    """Stage one batch's rows and quarantine rows."""
    if batch.rows.num_rows:
        session.stage(batch.rows)
    if batch.quarantine:
        columns = list(zip(*batch.quarantine, strict=True))
        session.quarantine(pa.table(columns, schema=QUARANTINE_SCHEMA))


def checked_batches(
    entries: Iterable[Entry],
    resource_type: str,
    options: LandingOptions,
    deleted_at: str,
    stack: ExitStack,
) -> Iterator[Batch]:
    """Checked batches, in input order.

    Fast mode checks in this process (on a shared 2-core machine, shipping lines to worker
    processes cost more than it saved). Full mode validates in ``options.workers`` processes,
    ``2 x workers`` batches in flight, unless the input fits in one batch. Workers are forked
    (``spawn`` would re-run an unguarded calling script) on the first submit, before the writer
    thread has touched the warehouse (Python 3.11 starts all fork workers at once).
    """
    if options.validation == FAST:
        for batch in build_batches(
            entries,
            resource_type,
            rows=options.batch_rows,
            deleted_at=deleted_at,
            max_bytes=options.batch_bytes,
        ):
            batch.texts, batch.origins = [], []  # only full validation needs them: free early
            yield batch
        return
    chunks = chunked(entries, options.batch_rows)
    first = next(chunks, None)
    if first is None:
        return
    if len(first) < options.batch_rows:
        yield validated_chunk(resource_type, first, deleted_at)
        return
    workers = options.workers or os.cpu_count() or 1
    pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("fork")))
    in_flight: deque[Future[Batch]] = deque()
    for chunk in itertools.chain([first], chunks):
        in_flight.append(pool.submit(validated_chunk, resource_type, chunk, deleted_at))
        if len(in_flight) >= 2 * workers:
            yield in_flight.popleft().result()
    while in_flight:
        yield in_flight.popleft().result()


def chunked(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    """Lists of ``size`` entries (the last one shorter)."""
    iterator = iter(entries)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def validated_chunk(resource_type: str, chunk: list[Entry], deleted_at: str) -> Batch:
    """One batch with fast checks and R4B model validation, failures moved to the quarantine
    (runs in a worker process for large inputs). The entries and texts are dropped from the
    result: only rows and quarantine travel back."""
    [batch] = build_batches(chunk, resource_type, rows=len(chunk), deleted_at=deleted_at)
    if batch.texts:
        errors = dict(validate_texts(resource_type, batch.texts))
        for n, error in errors.items():
            source, position, payload = batch.origins[n]
            batch.quarantine.append((resource_type, source, position, error, text_of(payload)))
        if errors:
            keep = [n not in errors for n in range(batch.rows.num_rows)]
            batch.rows = batch.rows.filter(pa.array(keep))
    batch.texts, batch.origins = [], []
    return batch


def ndjson_entries(path: Path, source: str | None = None) -> Iterator[Entry]:
    """``(source, line number, line bytes)`` for each non-blank line of an NDJSON file.

    ``.gz`` files are decompressed on the fly; ``source`` defaults to the path.
    """
    name = source or str(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.isspace():
                yield (name, number, line)


def resource_entries(source: str, resources: Iterable[Mapping[str, Any]]) -> Iterator[Entry]:
    """``(source, position, resource)`` for parsed resources, e.g. one search page."""
    for position, resource in enumerate(resources, 1):
        yield (source, position, resource)
