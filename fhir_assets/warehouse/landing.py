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

How a batch goes: this thread reads each line once, strictly, keeping resourceType, id and
meta (``batches.py``), and with full validation worker processes check it against the R4B model
(``models.py``); a writer thread hands the lines and those values to the warehouse, where DuckDB
applies the fast checks (``duckdb_sql.checked_lines``) and writes them. The lines it refuses come
back and are checked again in Python (``validation.check``): quarantined with the reason, or,
for a deletion Bundle, turned into tombstones. Parsing and writing overlap on two cores;
memory stays at about two batches.

Semantics (``merge_sql.py``): MERGE by (source_server, id), the newest version wins, an older or
equal one never overwrites, tombstones apply, re-landing changes nothing. Whatever fails a
check goes to ``fhir_raw._quarantine`` with its raw text, the error and source/position; it is
never dropped.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .arrays import int_array, table_of_rows
from .batches import (
    QUARANTINE_SCHEMA,
    Batch,
    Block,
    Entry,
    QuarantineRow,
    Tombstone,
    build_batches,
)
from .head import NotJSON, decode_json
from .inputs import MAX_LINE_BYTES
from .lines import stage_table
from .models import validated
from .protocol import LandingSession, Provenance, Warehouse
from .tombstones import deletions_or_raise
from .validation import FAST, MODES, ResourceError, check

log = logging.getLogger(__name__)
# While DuckDB runs a statement, its Python client takes the GIL now and then (to check for
# Ctrl-C); with the default 5 ms switch interval the writer thread queued behind the parsing
# thread (a batch took 6x longer). bench/landing.py: 1.9 s -> 1.35 s for 200 MB at 0.1 ms on an
# idle machine. On a loaded one (load average 3.3 on 2 cores) 0.1 ms forced a GIL handover
# every few lines, each waiting for the OS to run the other thread: `fhir-assets land` of 300 MB
# took 5.7 s wall / 4.2 s CPU at 0.1 ms, 4.3 s / 3.6 s at 1 ms, 4.9 s / 3.8 s at 5 ms.
SWITCH_INTERVAL_S = 0.001


class SwitchInterval:
    """Sets the GIL switch interval while at least one landing runs in the process; the first
    to enter saves the interval, the last to leave restores it."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.saved, self.users = seconds, 0.0, 0
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        with self.lock:
            if not self.users:
                self.saved = sys.getswitchinterval()
                sys.setswitchinterval(self.seconds)
            self.users += 1

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.users -= 1
            if not self.users:
                sys.setswitchinterval(self.saved)


SWITCH_INTERVAL = SwitchInterval(SWITCH_INTERVAL_S)


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
        max_line_bytes: an NDJSON line longer than this is quarantined unread with its line
            number (``FHIR_MAX_LINE_BYTES``, ``inputs.MAX_LINE_BYTES``).
    """

    validation: str = FAST
    batch_rows: int = 10_000
    batch_bytes: int = 8_000_000
    workers: int | None = None
    history: bool = False
    max_line_bytes: int = MAX_LINE_BYTES

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
        stack.enter_context(SWITCH_INTERVAL)
        session = stack.enter_context(
            warehouse.open_landing(resource_type.lower(), provenance, history=options.history)
        )
        writer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="fhir-landing"))
        batches = build_batches(
            entries, resource_type, rows=options.batch_rows, max_bytes=options.batch_bytes
        )
        if options.validation != FAST:
            batches = validated(batches, resource_type, options.workers, stack)
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
    accepted, gone, bad = recheck(lines.take(int_array(rejected, np.int32)), resource_type)
    gone += batch.tombstones
    if accepted or gone:
        columns = [list(c) for c in zip(*accepted, strict=True)] or [[], [], [], []]
        session.stage(stage_table(*columns, gone, deleted_at))
    bad += batch.quarantine
    if bad:
        session.quarantine(table_of_rows(bad, QUARANTINE_SCHEMA))
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
        try:
            resource = decode_json(text)
        except NotJSON as exc:  # JSON but no object, and broken after all
            bad.append((resource_type, source, number, str(exc), text))
            continue
        try:
            accepted.append((*check(resource, resource_type), text))
        except ResourceError as error:
            try:
                tombstones.extend(deletions_or_raise(resource, resource_type, error))
            except ResourceError as exc:
                bad.append((resource_type, source, number, str(exc), text))
    return accepted, tombstones, bad
