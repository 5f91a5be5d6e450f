"""Opening a DuckDB file that another process may hold, and recognising DuckDB's out-of-memory
error behind the error it surfaces as."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import duckdb

from .errors import WarehouseLockedError

log = logging.getLogger(__name__)


def out_of_memory(error: BaseException) -> str | None:
    """DuckDB's out-of-memory message behind ``error``, if that is what it is. DuckDB may
    report it as a later "transaction is aborted" error, with the real cause in
    ``__context__``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, duckdb.OutOfMemoryException):
            return str(current).splitlines()[0]
        current = current.__cause__ or current.__context__
    return None


# DuckDB 1.x/2.x: 'Could not set lock on file "F": Conflicting lock is held in PROGRAM (PID N)'
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")
# The one wording of the wait and of the failure, for every path that opens the file (Dagster
# steps, `land`, `sync`, the CLI); docs/sync.md quotes both exactly (test_lock.py checks).
WAITING = (
    "waiting up to {wait_s:.0f} s (FHIR_DUCKDB_LOCK_WAIT_S) for the DuckDB file {database}: "
    "{holder} holds it"
)
LOCKED = (
    "the DuckDB file {database} is still in use by {holder} after {wait_s:.0f} s "
    "(FHIR_DUCKDB_LOCK_WAIT_S): stop that process (a notebook or duckdb shell: query a copy "
    "while pipelines run) or wait until it finishes, then run again (one writer at a time)"
)


def connect_waiting(
    database: str,
    config: dict[str, Any] | None = None,
    wait_s: float = 120.0,
    *,
    warn: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.monotonic,
) -> duckdb.DuckDBPyConnection:
    """Open ``database`` for writing; while another process holds it, say once (``WAITING``)
    that this one waits and for whom, and retry for up to ``wait_s`` seconds.

    Args:
        warn: where to say it (a Dagster step passes its logger); the module logger otherwise.

    Raises:
        WarehouseLockedError: the file is still held after ``wait_s`` (``LOCKED``: the message
            names the process holding it).
    """
    deadline, warned = now() + wait_s, False
    while True:
        try:
            return duckdb.connect(database, read_only=False, config=config or {})
        except duckdb.IOException as exc:
            found = _LOCK_HOLDER.search(str(exc))
            if found is None:
                raise
            said = {"database": database, "wait_s": wait_s}
            said["holder"] = f"process {found.group(2)} ({found.group(1)})"
            if now() >= deadline:
                raise WarehouseLockedError(LOCKED.format(**said)) from exc
            if not warned:
                (warn or log.warning)(WAITING.format(**said))
                warned = True
            sleep(min(1.0, max(deadline - now(), 0.0)))
