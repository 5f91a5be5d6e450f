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
``LandingOptions.batch_rows``; one batch is built while the previous one is written.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .batches import QUARANTINE_SCHEMA, Batch, Entry, build_batches, text_of
from .protocol import LandingSession, Provenance, Warehouse
from .validation import FAST, FULL, MODES, validate_texts

log = logging.getLogger(__name__)
CHUNK = 2_000  # resources per full-validation task


@dataclass(frozen=True, slots=True)
class LandingOptions:
    """How to land.

    Attributes:
        validation: ``fast`` (structural checks, default) or ``full`` (plus R4B models in
            ``workers`` processes); see ``validation.py``.
        batch_rows: entries per batch; bounds memory (about rows x line size, twice).
        workers: processes for full validation (default: one per CPU).
    """

    validation: str = FAST
    batch_rows: int = 20_000
    workers: int | None = None

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
        session = stack.enter_context(warehouse.open_landing(resource_type.lower(), provenance))
        writer = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="fhir-landing"))
        batches = build_batches(
            entries, resource_type, rows=options.batch_rows, deleted_at=provenance.tombstone_time
        )
        if options.validation == FULL:
            pool = stack.enter_context(ProcessPoolExecutor(options.workers))
            batches = validated(batches, resource_type, pool, depth=2 * (options.workers or 2))
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


def validated(
    batches: Iterator[Batch], resource_type: str, pool: Executor, *, depth: int
) -> Iterator[Batch]:
    """Full R4B validation of each batch's resources in ``pool``, ``depth`` batches in flight;
    invalid resources move from the rows to the quarantine."""
    in_flight: list[tuple[Batch, list[Future[list[tuple[int, str]]]]]] = []
    for batch in batches:
        in_flight.append((batch, submit_chunks(pool, resource_type, batch.texts)))
        if len(in_flight) >= depth:
            yield apply_errors(*in_flight.pop(0), resource_type)
    for batch, futures in in_flight:
        yield apply_errors(batch, futures, resource_type)


def submit_chunks(
    pool: Executor, resource_type: str, texts: list[bytes | str]
) -> list[Future[list[tuple[int, str]]]]:
    """Validate ``texts`` in chunks so that every worker gets a share of a batch."""
    chunks = [[t.encode() if isinstance(t, str) else t for t in texts[i : i + CHUNK]]
              for i in range(0, len(texts), CHUNK)]  # fmt: skip
    return [pool.submit(validate_texts, resource_type, chunk) for chunk in chunks]


def apply_errors(
    batch: Batch, futures: list[Future[list[tuple[int, str]]]], resource_type: str
) -> Batch:
    """The batch without the resources the validators rejected, those now in quarantine."""
    bad: dict[int, str] = {}
    for n, future in enumerate(futures):
        bad.update((CHUNK * n + position, error) for position, error in future.result())
    if not bad:
        return batch
    keep = [i not in bad for i in range(batch.rows.num_rows)]
    for i, error in sorted(bad.items()):
        source, position, payload = batch.origins[i]
        batch.quarantine.append((resource_type, source, position, error, text_of(payload)))
    batch.rows = batch.rows.filter(pa.array(keep))
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
