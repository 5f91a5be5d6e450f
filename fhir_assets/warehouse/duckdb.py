"""The embedded default warehouse: a DuckDB file.

Landing merges each Arrow batch straight into the raw table (no staging copy): DuckDB reads the
registered Arrow table in place, so a batch is parsed once in Python and written once.
This module imports no dagster (the bench and ``fhir-assets land`` stay light); the Dagster
resource is in ``warehouse/resources.py``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from . import sql
from .layout import RAW_SCHEMA
from .protocol import Outcome, Provenance

DEFAULT_PATH = ".fhir-assets/warehouse.duckdb"
_names = itertools.count()
# A transaction is committed after this many rows (more than a DuckDB row group, 122,880) or
# this much resource text, whichever comes first (see ``DuckDBLanding``).
COMMIT_ROWS = 130_000
COMMIT_BYTES = 32_000_000


class DuckDBWarehouse:
    """Landing into DuckDB through one open connection (see ``warehouse.protocol.Warehouse``)."""

    dialect = sql.DUCKDB

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        memory_limit: str | None = None,
        commit_rows: int = COMMIT_ROWS,
    ) -> None:
        """Args:
        connection: an open DuckDB connection.
        memory_limit: DuckDB ``memory_limit`` to set (e.g. ``256MB``). DuckDB's default is
            80% of RAM, and its buffer cache then grows with the data landed; a limit keeps the
            process's peak RSS bounded whatever the input size (DuckDB spills to disk). It is
            a setting of the whole database instance.
        commit_rows: rows merged per transaction (see ``DuckDBLanding``).
        """
        self.connection = connection
        self.commit_rows = commit_rows
        if memory_limit is not None:
            connection.execute(f"SET memory_limit = {sql.DUCKDB.literal(memory_limit)}")

    def fetch(self, query: str) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        return self.connection.execute(query).fetchall()

    @contextmanager
    def open_landing(
        self, table: str, provenance: Provenance, *, history: bool = False
    ) -> Iterator[DuckDBLanding]:
        """Create the schema, raw, quarantine (and history) tables if needed; yield a landing."""
        self.connection.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        self.connection.execute(sql.create_raw_table(self.dialect, table))
        self.connection.execute(sql.create_quarantine_table(self.dialect))
        if history:
            self.connection.execute(sql.create_raw_table(self.dialect, sql.history_table(table)))
        landing = DuckDBLanding(self.connection, table, provenance, history, self.commit_rows)
        try:
            yield landing
        except BaseException:
            # A failed merge rolled its group back already; what merged before the error stays
            # (as when every batch committed on its own): re-landing is idempotent.
            landing.commit()
            raise


@dataclass
class DuckDBLanding:
    """One landing session: every ``stage`` call merges its batch; the merges are committed
    in groups of at least ``commit_rows`` rows, and the last group by ``finish``.

    Why groups: DuckDB writes a committed change to its write-ahead log and, past
    ``checkpoint_threshold`` (16 MiB), rewrites it into the database file; a transaction that
    appends more than a row group (122,880 rows) writes straight to the file instead. Committing
    every 10k-row batch therefore wrote every resource twice and checkpointed every few batches.
    The byte bound keeps the open transaction's memory (and the process's peak RSS) bounded
    for large resources; it was chosen by ``bench/landing.py`` and ``bench/bulk.py``.
    """

    connection: duckdb.DuckDBPyConnection
    table: str
    provenance: Provenance
    history: bool = False
    commit_rows: int = COMMIT_ROWS
    commit_bytes: int = COMMIT_BYTES
    outcome: Outcome = field(default_factory=Outcome)
    uncommitted: int = 0
    uncommitted_bytes: int = 0
    dialect = sql.DUCKDB

    def stage(self, rows: pa.Table) -> None:
        """MERGE one batch (``STAGE_SCHEMA``) into the raw table, counting what changes."""
        name = f"_fhir_batch_{next(_names)}"
        # The arrow.json extension type makes DuckDB take the text as JSON without a cast.
        resource = rows.column("resource").combine_chunks()
        rows = rows.set_column(
            3,
            pa.field("resource", pa.json_()),
            pa.ExtensionArray.from_storage(pa.json_(), resource),
        )
        passes = (False, True) if pc.any(rows.column("deleted")).as_py() else (False,)
        self.connection.register(name, rows)
        try:
            if not self.uncommitted:
                self.connection.execute("BEGIN TRANSACTION")
            self.uncommitted += rows.num_rows
            self.uncommitted_bytes += resource.nbytes
            for tombstones in passes:
                self.outcome += self._merge(self._staged(name, tombstones))
            if self.history:
                p = self.provenance
                versions = sql.staged_versions(self.dialect, name, p.source_server, p.sync_id, p.at)
                self.connection.execute(sql.merge_history(self.table, versions))
            if self.uncommitted >= self.commit_rows or self.uncommitted_bytes >= self.commit_bytes:
                self.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            self.connection.unregister(name)

    def commit(self) -> None:
        """Commit the open group of merges, if any."""
        if self.uncommitted:
            self.uncommitted = self.uncommitted_bytes = 0
            self.connection.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back the open group of merges, if any (``stage`` then raises: the landing
        ends, so the counts it had added no longer matter)."""
        if self.uncommitted:
            self.uncommitted = self.uncommitted_bytes = 0
            self.connection.execute("ROLLBACK")

    def quarantine(self, rows: pa.Table) -> None:
        """Add quarantine rows (``batches.QUARANTINE_SCHEMA``) that are not there yet."""
        name = f"_fhir_quarantine_{next(_names)}"
        self.connection.register(name, rows)
        try:
            p = self.provenance
            self.connection.execute(
                sql.merge_quarantine(self.dialect, name, p.source_server, p.sync_id, p.at)
            )
        finally:
            self.connection.unregister(name)

    def finish(self) -> Outcome:
        """Commit the last group of merges; return the totals."""
        self.commit()
        return self.outcome

    def _merge(self, staged: str) -> Outcome:
        """MERGE ``staged`` rows; count what it did from its RETURNING rows (one pass over the
        batch and the table, where a separate count query took a second one)."""
        returned = self.connection.execute(sql.merge_raw(self.table, staged, returning=True))
        actions = Counter(returned.fetchall())
        return Outcome(
            inserted=actions["INSERT", False],
            updated=actions["UPDATE", False],
            deleted=actions["INSERT", True] + actions["UPDATE", True],
        )

    def _staged(self, name: str, tombstones: bool) -> str:
        p = self.provenance
        return sql.newest_staged(
            self.dialect, name, p.source_server, p.sync_id, p.at, tombstones=tombstones
        )
