"""Waiting for the DuckDB file when another process holds it, saying who, before landing.

DuckDB lets one process write a file, and a read-only connection in another process blocks
writers too. dagster-duckdb's resource retries for about 100 s and then raises a bare
``IOException``; this wait comes first, logs the holder's PID, and ends in one sentence that
says what to do. It probes with a plain connection that is closed at once, so the landing then
opens the file through the resource as usual (with its own short retry for the last race).
"""

# No `from __future__ import annotations` needed; kept plain for Dagster-free use in tests.
import re
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb

# DuckDB 1.x/2.x: 'Could not set lock on file "F": Conflicting lock is held in PROGRAM (PID N)'
LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")
LOCK_WAIT_S = 300.0


def lock_holder(error: BaseException) -> str | None:
    """``"PID 123 (python3)"`` when ``error`` is DuckDB's lock conflict, else ``None``."""
    found = LOCK_HOLDER.search(str(error))
    return f"PID {found.group(2)} ({found.group(1)})" if found else None


def wait_for_write_lock(
    database: str,
    log: Callable[[str], None],
    wait_s: float = LOCK_WAIT_S,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.monotonic,
) -> None:
    """Return once ``database`` can be opened for writing; wait while another process holds it.

    Args:
        database: the DuckDB file (a missing file is free).
        log: where to say who holds the file (``context.log.warning``).
        wait_s: how long to wait before failing.

    Raises:
        dagster.Failure: another process still holds the file after ``wait_s``.
    """
    if database == ":memory:" or not Path(database).exists():
        return
    deadline, told = now() + wait_s, None
    while True:
        try:
            duckdb.connect(database).close()
            return
        except duckdb.IOException as exc:
            holder = lock_holder(exc)
            if holder is None:
                raise
            if now() >= deadline:
                raise dg.Failure(
                    f"The DuckDB file {database} is still held by {holder} after {wait_s:.0f} s: "
                    "close that connection (a notebook or duckdb shell; query a copy of the file "
                    "while pipelines run) and re-run this step."
                ) from exc
            if holder != told:
                log(f"waiting up to {wait_s:.0f} s for {database}: {holder} holds its lock")
                told = holder
            sleep(min(1.0, max(deadline - now(), 0.0)))
