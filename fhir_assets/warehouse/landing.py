"""The one landing code path: raw FHIR input of one type -> validated, merged raw table.

Used by the raw Dagster assets (REST search), ``fhir-assets land DIR`` (NDJSON files) and the
bulk export and REST sync code. Call ``land`` once per resource type and source::

    from fhir_assets.warehouse.inputs import ndjson_blocks
    from fhir_assets.warehouse.landing import LandingOptions, land
    from fhir_assets.warehouse.protocol import Provenance

    result = land(warehouse, "Observation", ndjson_blocks(path), Provenance.now(url, run_id))

The input is any iterable of ``batches.Block`` (raw NDJSON bytes of a file: the fast path, see
``inputs.ndjson_blocks``) and ``batches.Entry`` triples ``(source, position, payload)``:
    * ``source``: the file path or redacted URL (no query string: it is stored and shown);
    * ``position``: line number in the file, or position in the page/sync (1-based);
    * ``payload``: NDJSON line as ``bytes``/``str`` (kept verbatim as the stored resource), a
      parsed resource ``dict`` (re-serialized with orjson), a ``batches.Tombstone``, or a
      deletion ``Bundle`` line (Bulk Data ``deleted`` file / history DELETE entries).
``inputs.resource_entries(source, resources)`` builds entries of parsed resources.

How a batch goes: this thread proves each line is JSON (``batches.py``), and with full
validation worker processes check it against the R4B model; a writer thread hands the lines to
the warehouse, where DuckDB takes out id, versionId and lastUpdated and applies the fast checks
(``sql.checked_lines``). The lines it refuses come back and are checked again in Python
(``validation.check``): quarantined with the reason, or, for a deletion Bundle, turned into
tombstones. Parsing and writing overlap on two cores; memory stays at about two batches.

Semantics (``sql.py``): MERGE by (source_server, id), the newest version wins, an older or
equal one never overwrites, tombstones apply, re-landing changes nothing. Whatever fails a
check goes to ``fhir_raw._quarantine`` with its raw text, the error and source/position; it is
never dropped.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from .batches import (
    QUARANTINE_SCHEMA,
    Batch,
    Block,
    Entry,
    QuarantineRow,
    Tombstone,
    build_batches,
    stage_table,
)
from .protocol import LandingSession, Provenance, Warehouse
from .tombstones import deletions_or_raise
from .validation import FAST, MODES, ResourceError, check, validate_texts

log = logging.getLogger(__name__)
# While DuckDB runs a statement, its Python client takes the GIL now and then (to check for
# Ctrl-C); with the default 5 ms switch interval the writer thread queued behind the parsing
# thread (a batch took 6x longer). bench/landing.py: 1.9 s -> 1.35 s for 200 MB at 0.1 ms.
SWITCH_INTERVAL_S = 0.0001


@dataclass(frozen=True, slots=True)
class LandingOptions:
    """How to land.

    Attributes:
        validation: ``fast`` (structural checks, default) or ``full`` (plus R4B models in
            ``workers`` processes); see ``validation.py``.
        batch_rows: entries per batch; bounds memory (about rows x line size, twice).
        batch_bytes: a batch of entries also ends at this much resource text, so that large
            resources (Composition, DocumentReference) keep memory bounded too (blocks are
            bounded by their own size, ``inputs.BLOCK_BYTES``).
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
    entries: Iterable[Block | Entry],
    provenance: Provenance,
    options: LandingOptions | None = None,
) -> LandingResult:
    """Land input of one resource type into ``fhir_raw.<type lower>``.

    Args:
        warehouse: an open ``DuckDBWarehouse`` or ``SnowflakeWarehouse``.
        resource_type: the FHIR type; entries of another type are quarantined.
        entries: blocks and ``(source, position, payload)`` triples, read lazily (module doc).
        provenance: server, sync id and times stored on the rows.
        options: validation mode, batch size, workers.

    Returns:
        what happened, entry by entry: seen = landed + updated + deleted + unchanged +
        quarantined (a deletion Bundle line counts once per tombstone it holds).

    Raises:
        Whatever the warehouse raises. DuckDB landing into a table without rows of this server
        lands all or nothing; otherwise batches merged before the error stay (re-landing is
        safe).
    """
    options = options or LandingOptions()
    started = time.monotonic()
    staged = quarantined = 0
    deleted_at = provenance.tombstone_time
    with ExitStack() as stack:
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        session = stack.enter_context(
            warehouse.open_landing(resource_type.lower(), provenance, history=options.history)
        )
        writer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="fhir-landing"))
        batches = build_batches(
            entries, resource_type, rows=options.batch_rows, max_bytes=options.batch_bytes
        )
        if options.validation != FAST:
            batches = validated(batches, resource_type, options, stack)
        pending: Future[tuple[int, int]] | None = None
        for batch in batches:
            if pending is not None:
                staged, quarantined = add(pending.result(), staged, quarantined)
            pending = writer.submit(write, session, batch, resource_type, deleted_at)
        if pending is not None:
            staged, quarantined = add(pending.result(), staged, quarantined)
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


def add(counts: tuple[int, int], staged: int, quarantined: int) -> tuple[int, int]:
    """Running totals of (staged, quarantined)."""
    return staged + counts[0], quarantined + counts[1]


def write(
    session: LandingSession, batch: Batch, resource_type: str, deleted_at: str
) -> tuple[int, int]:
    """Land one batch: its lines, then whatever the lines the warehouse refused turn out to be
    (resources after all, tombstones, or quarantine rows), then its tombstones.

    Returns:
        how many rows were staged and how many quarantined.
    """
    lines = batch.lines
    rejected = session.stage_lines(lines, resource_type) if lines.num_rows else []
    accepted, gone, bad = recheck(lines.take(pa.array(rejected, pa.int32())), resource_type)
    gone += batch.tombstones
    if accepted or gone:
        columns = [list(c) for c in zip(*accepted, strict=True)] or [[], [], [], []]
        session.stage(stage_table(*columns, gone, deleted_at))
    bad += batch.quarantine
    if bad:
        session.quarantine(pa.table(list(zip(*bad, strict=True)), schema=QUARANTINE_SCHEMA))
    return lines.num_rows - len(rejected) + len(accepted) + len(gone), len(bad)


def recheck(
    lines: pa.Table, resource_type: str
) -> tuple[list[tuple[str, str | None, str | None, str]], list[Tombstone], list[QuarantineRow]]:
    """The Python checks (``validation.check``) of lines the warehouse's SQL refused.

    Returns:
        resources that pass after all (id, versionId, lastUpdated, text), tombstones of
        deletion Bundles, and quarantine rows naming what is wrong.
    """
    accepted, tombstones, bad = [], [], []
    columns = (lines.column(name).to_pylist() for name in ("source", "line", "text"))
    for source, number, text in zip(*columns, strict=True):
        resource = orjson.loads(text)
        try:
            accepted.append((*check(resource, resource_type), text))
        except ResourceError as error:
            try:
                tombstones.extend(deletions_or_raise(resource, resource_type, error))
            except ResourceError as exc:
                bad.append((resource_type, source, number, str(exc), text))
    return accepted, tombstones, bad


def validated(
    batches: Iterator[Batch], resource_type: str, options: LandingOptions, stack: ExitStack
) -> Iterator[Batch]:
    """Full validation: the batches, in order, without the lines the R4B model refuses (those
    become quarantine rows).

    Validation runs in ``options.workers`` processes, ``2 x workers`` batches in flight, unless
    the input is one batch. Workers are forked (``spawn`` would re-run an unguarded calling
    script) on the first submit, before the writer thread has touched the warehouse (Python
    3.11 starts all fork workers at once).
    """
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None:
        yield without_invalid(first, validate_texts(resource_type, texts_of(first)), resource_type)
        return
    workers = options.workers or os.cpu_count() or 1
    pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("fork")))
    in_flight: deque[tuple[Batch, Future[list[tuple[int, str]]]]] = deque()
    for batch in itertools.chain([first, second], batches):
        in_flight.append((batch, pool.submit(validate_texts, resource_type, texts_of(batch))))
        if len(in_flight) >= 2 * workers:
            batch, errors = in_flight.popleft()
            yield without_invalid(batch, errors.result(), resource_type)
    while in_flight:
        batch, errors = in_flight.popleft()
        yield without_invalid(batch, errors.result(), resource_type)


def texts_of(batch: Batch) -> list[str]:
    """The JSON texts of a batch's lines."""
    return batch.lines.column("text").to_pylist()  # type: ignore[no-any-return]


def without_invalid(batch: Batch, errors: list[tuple[int, str]], resource_type: str) -> Batch:
    """The batch with the lines at the positions of ``errors`` moved to its quarantine."""
    if not errors:
        return batch
    lines = batch.lines
    for n, error in errors:
        source, number = lines.column("source")[n].as_py(), lines.column("line")[n].as_py()
        text = lines.column("text")[n].as_py()
        batch.quarantine.append((resource_type, source, number, error, text))
    invalid = {n for n, _ in errors}
    kept = lines.filter(pa.array([n not in invalid for n in range(lines.num_rows)]))
    positions = pa.array(np.arange(kept.num_rows, dtype=np.int32))
    batch.lines = kept.set_column(0, "n", positions)
    return batch
