"""A landing session into DuckDB (``DuckDBLanding``), opened by ``duckdb.DuckDBWarehouse``.

Two ways to land, chosen when a landing opens:
    * **append**, when the raw table holds no row of this server yet (a first sync, a bulk
      backfill, ``fhir-assets land`` into a new file): one statement per batch parses the JSON
      lines, checks them and INSERTs them (``duckdb_sql.checked_lines`` +
      ``duckdb_sql.append_raw``); ids that came more than once are reduced to the newest at the
      end. The whole landing is one transaction: it lands completely or not at all.
    * **merge**, otherwise: each batch is checked, then MERGEd under the current-state rule; the
      merges are committed in groups.

Batches are read in place from Arrow through ``from_arrow`` relations. Not ``register()``: a
registered Python object stays referenced until the transaction ends, so a long transaction
held every batch it had read (2 GB of input took 2.2 GB of memory).
This module imports no dagster, like ``duckdb.py``.
"""

# Statements name generated views and catalog tables, never input: see sql.py.
# ruff: noqa: S608

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from . import duckdb_sql, merge_sql, sql
from .duckdb_file import out_of_memory
from .errors import WarehouseMemoryError
from .protocol import Outcome, Provenance

_names = itertools.count()
log = logging.getLogger(__name__)
# A merge transaction is committed after this many rows (more than a DuckDB row group, 122,880)
# or this much resource text, whichever comes first (see ``DuckDBLanding``). The text of the
# group's lines is held in their Arrow batches until then: the byte bound bounds that memory.
# At 32 MB (56,000 Observations of the bench) the groups' inserts went through the write-ahead
# log and COMMIT took 1.0 s of CPU re-landing 300 MB; a group of a row group or more is written
# to the database file directly (bench/landing.py ``land-changed``).
COMMIT_ROWS = 130_000
COMMIT_BYTES = 96_000_000
# ... and a transaction is committed after this many groups were applied in it. A transaction's
# inserted rows are written to the database file a row group at a time; those of a last, partial
# row group go through the write-ahead log at COMMIT and are compressed and merged with their
# neighbours at the next checkpoint. Committing every group did that once a group: re-landing
# 300 MB in which everything changed took 3.4-3.5 s of CPU, 2.6-2.7 s with one commit.
GROUPS_PER_COMMIT = 8


@dataclass
class DuckDBLanding:
    """One landing session, appending or merging (see the module doc).

    Merge mode stages the checked rows of several batches in a temporary table and applies
    them together, set-based, once at least ``commit_rows`` rows or ``commit_bytes`` of text
    are staged (``_flush``: the rows that change the table are chosen by one join, the rows
    they replace deleted, the new ones inserted); every ``GROUPS_PER_COMMIT`` groups it commits.
    A JSON line's text is not copied into the staging table: the table says where the line is
    (``batch``, ``n``), the line's Arrow batch is held (``held``) and only the changed lines are
    read from it (``duckdb_sql.insert_changed_lines``): copying 300 MB of text into the table cost
    ~0.15 s of CPU, and lines that change nothing are not read again. With ``history`` the text
    is staged (the history table takes every staged version). Why groups: each application
    joins the staged rows with the whole raw table, and DuckDB writes a committed change to its
    write-ahead log (a transaction that appends more than a row group, 122,880 rows, writes
    those rows straight to the file and logs where they are); past ``checkpoint_threshold`` a
    commit also rewrites the log into the database file, so the landing raises that threshold
    while it runs (``duckdb.LANDING_CHECKPOINT_THRESHOLD``). The byte bound keeps the staged text
    bounded for large resources. Why delete+insert and not UPDATE: DuckDB keeps an UPDATE's new
    values in memory until COMMIT and rewrites the row groups it touched at each checkpoint.
    """

    connection: duckdb.DuckDBPyConnection
    table: str
    provenance: Provenance
    history: bool = False
    append: bool = False
    commit_rows: int = COMMIT_ROWS
    commit_bytes: int = COMMIT_BYTES
    outcome: Outcome = field(default_factory=Outcome)
    uncommitted: int = 0  # rows staged, not applied yet
    uncommitted_bytes: int = 0
    applied: int = 0  # groups applied in the open transaction
    open: bool = False
    tombstones: str | None = None  # append mode: temporary table of the tombstones staged
    staging: str | None = None  # merge mode: temporary table of the rows staged, not applied
    staged_tombstones: bool = False  # whether ``staging`` holds tombstones
    held: dict[int, pa.Table] = field(default_factory=dict)  # merge mode: lines staged by place
    dialect = sql.DUCKDB

    def stage_lines(self, lines: pa.Table, resource_type: str) -> list[int]:
        """Land (append) or stage (merge) the JSON lines (``batches.LINES_SCHEMA``) that pass
        the fast checks; return the positions (``n``) of those that do not."""
        p, view = self.provenance, f"_fhir_lines_{next(_names)}"
        checked = duckdb_sql.checked_lines(view, resource_type)
        with self.transaction():
            if self.append:
                insert = duckdb_sql.append_raw(
                    self.table, checked, p.source_server, p.sync_id, p.at
                )
            else:  # the text stays in ``lines`` until applied (history reads it staged)
                batch = None if self.history else next(_names)
                insert = duckdb_sql.stage_ok(self.staging_table(), checked, batch)
            [(inserted,)] = self.run(lines, view, insert)
            if self.append:
                self.outcome += Outcome(inserted=inserted)
            else:
                if batch is not None and inserted:
                    self.held[batch] = lines
                self.staged(inserted, lines.column("text").nbytes, tombstones=False)
            if inserted == lines.num_rows:
                return []
            failed = f"SELECT n FROM ({checked}) WHERE NOT ok ORDER BY n"
            return [n for (n,) in self.run(lines, view, failed)]

    def stage(self, rows: pa.Table) -> None:
        """Land staged rows (``lines.STAGE_SCHEMA``: resources and tombstones), counting what
        changes. In append mode resources are inserted and tombstones kept for ``finish``."""
        # The arrow.json extension type makes DuckDB take the text as JSON without a cast.
        resource = rows.column("resource").combine_chunks()
        rows = rows.set_column(
            3,
            pa.field("resource", pa.json_()),
            pa.ExtensionArray.from_storage(pa.json_(), resource),
        )
        with self.transaction():
            if self.append:
                self._append(rows)
            else:
                name = f"_fhir_batch_{next(_names)}"
                staging = self.staging_table()
                insert = (
                    f"INSERT INTO {sql.identifier(staging)} "
                    f"SELECT *, NULL, NULL FROM {sql.identifier(name)}"
                )
                self.run(rows, name, insert)
                gone = bool(pc.any(rows.column("deleted")).as_py())
                self.staged(rows.num_rows, resource.nbytes, tombstones=gone)

    def staging_table(self) -> str:
        """Merge mode: the temporary table of staged rows, created if need be (in the open
        transaction: a rollback drops it)."""
        if self.staging is None:
            self.staging = f"_fhir_staged_{next(_names)}"
            self.connection.execute(
                f"CREATE TEMP TABLE {sql.identifier(self.staging)} ({duckdb_sql.STAGE_JSON_DDL})"
            )
        return self.staging

    def staged(self, rows: int, nbytes: int, *, tombstones: bool) -> None:
        """Merge mode: count rows just staged; apply them all once there are enough."""
        self.uncommitted += rows
        self.uncommitted_bytes += nbytes
        self.staged_tombstones |= tombstones
        if self.uncommitted >= self.commit_rows or self.uncommitted_bytes >= self.commit_bytes:
            self._flush()
            if self.applied >= GROUPS_PER_COMMIT:
                self.commit()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run statements in the landing's transaction, opened if need be; an error rolls it
        back (DuckDB refuses all but ROLLBACK in a transaction a statement failed in)."""
        if not self.open:
            self.connection.execute("BEGIN TRANSACTION")
            self.open = True
        try:
            yield
        except BaseException as exc:
            self.rollback()
            if out_of_memory(exc):
                raise WarehouseMemoryError(
                    "DuckDB ran out of memory while landing into "
                    f"{sql.qualified(self.table)} ({out_of_memory(exc)}): raise the limit with "
                    "FHIR_DUCKDB_MEMORY_LIMIT or `fhir-assets land --memory-limit` (e.g. 512MB), "
                    "or land smaller batches"
                ) from exc
            raise

    def run(self, rows: pa.Table, name: str, statement: str) -> list[tuple[Any, ...]]:
        """Run ``statement`` with ``rows`` read in place as ``name``; its result rows."""
        return self.connection.from_arrow(rows).query(name, statement).fetchall()

    def commit(self) -> None:
        """Commit the open transaction, if any."""
        if self.open:
            self.open, self.uncommitted, self.uncommitted_bytes, self.applied = False, 0, 0, 0
            try:
                self.connection.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.Error):  # a failed COMMIT leaves the transaction aborted
                    self.connection.execute("ROLLBACK")
                self.staging, self.staged_tombstones = None, False
                self.held.clear()
                raise

    def rollback(self) -> None:
        """Roll back the open transaction, if any (the landing then raises: the counts it had
        added no longer matter)."""
        if self.open:
            self.open, self.uncommitted, self.uncommitted_bytes, self.applied = False, 0, 0, 0
            self.staging, self.staged_tombstones = None, False  # (created in the transaction)
            self.held.clear()
            self.connection.execute("ROLLBACK")

    def salvage(self) -> None:
        """Merge mode, after an error outside the warehouse (the input failed): apply and
        commit what was staged. An error doing so rolls back and is logged: the landing raises
        the first one."""
        try:
            with self.transaction():
                self._flush()
        except Exception as exc:  # the landing raises the first error
            name = type(exc).__name__
            log.warning("could not apply the rows staged before the landing failed (%s)", name)
        self.commit()

    def quarantine(self, rows: pa.Table) -> None:
        """Add quarantine rows (``batches.QUARANTINE_SCHEMA``) that are not there yet."""
        name, p = f"_fhir_quarantine_{next(_names)}", self.provenance
        merge = merge_sql.merge_quarantine(self.dialect, name, p.source_server, p.sync_id, p.at)
        with self.transaction():
            self.run(rows, name, merge)

    def finish(self) -> Outcome:
        """Append mode: keep the newest row of each id, apply the tombstones. Merge mode: apply
        what is staged. Commit."""
        if not self.open:
            return self.outcome
        with self.transaction():
            if self.append:
                self._deduplicate()
            else:
                self._flush()
            self.commit()
        return self.outcome

    def _deduplicate(self) -> None:
        server = self.provenance.source_server
        [(repeated,)] = self.connection.execute(
            duckdb_sql.duplicates(self.table, server)
        ).fetchall()
        if repeated:
            self.connection.execute(duckdb_sql.delete_older_duplicates(self.table, server))
            self.outcome += Outcome(inserted=-repeated)
        if self.tombstones:
            self.outcome += self._merge(self.tombstones, tombstones=True)
            self.connection.execute(f"DROP TABLE {sql.identifier(self.tombstones)}")

    def _append(self, rows: pa.Table) -> None:
        p, name = self.provenance, f"_fhir_batch_{next(_names)}"
        gone = pc.any(rows.column("deleted")).as_py()
        staged = f"SELECT *, NOT deleted AS ok FROM {sql.identifier(name)}"
        insert = duckdb_sql.append_raw(self.table, staged, p.source_server, p.sync_id, p.at)
        [(inserted,)] = self.run(rows, name, insert)
        self.outcome += Outcome(inserted=inserted)
        if gone:
            if self.tombstones is None:
                self.tombstones = f"_fhir_tombstones_{next(_names)}"
                self.connection.execute(
                    f"CREATE TEMP TABLE {sql.identifier(self.tombstones)} "
                    f"({duckdb_sql.STAGE_JSON_DDL})"
                )
            self.run(
                rows,
                name,
                f"INSERT INTO {sql.identifier(self.tombstones)} "
                f"SELECT *, NULL, NULL FROM {sql.identifier(name)} WHERE deleted",
            )

    def _flush(self) -> None:
        """Merge mode: apply the staged rows (resources, then tombstones), empty the stage."""
        if self.staging is None or not self.uncommitted:
            return
        passes = (False, True) if self.staged_tombstones else (False,)
        for tombstones in passes:
            self.outcome += self._merge(self.staging, tombstones=tombstones)
        if self.history:
            p = self.provenance
            versions = merge_sql.staged_versions(
                self.dialect, self.staging, p.source_server, p.sync_id, p.at
            )
            self.connection.execute(merge_sql.merge_history(self.table, versions))
        self.connection.execute(f"DELETE FROM {sql.identifier(self.staging)}")
        self.staged_tombstones, self.uncommitted, self.uncommitted_bytes = False, 0, 0
        self.held.clear()
        self.applied += 1

    def _merge(self, source: str, *, tombstones: bool) -> Outcome:
        """Apply the rows staged in the table ``source`` (resources or tombstones) under the
        current-state rule, set-based: the rows that change the table are chosen once
        (``duckdb_sql.changed_rows``: the decision of ``merge_sql.merge_raw``), the rows they
        replace are deleted and they are inserted. Not MERGE: DuckDB keeps an UPDATE's new values in
        memory and rewrites the row groups it touched at each checkpoint, where deleted rows
        are only marked and inserted ones appended (bench/landing.py ``land-changed``)."""
        p, changed = self.provenance, f"_fhir_changed_{next(_names)}"
        [(repeated,)] = self.fetch(duckdb_sql.repeated_ids(source, tombstones=tombstones))
        staged = merge_sql.newest_staged(
            self.dialect,
            source,
            p.source_server,
            p.sync_id,
            p.at,
            tombstones=tombstones,
            row=True,
            unique=not repeated,
        )
        self.connection.execute(duckdb_sql.changed_rows(self.table, staged, changed))
        # (a failed statement rolls the transaction back, the temporary table with it)
        [counts] = self.fetch(duckdb_sql.count_changed(changed))
        if counts != (0, 0, 0):
            if counts[1] or counts[2]:
                self.connection.execute(duckdb_sql.delete_replaced(self.table, changed))
            insert = duckdb_sql.insert_changed(
                self.table, source, changed, p.source_server, p.sync_id, p.at
            )
            self.connection.execute(insert)
            for (batch,) in self.fetch(duckdb_sql.changed_batches(changed)):
                name = f"_fhir_lines_{next(_names)}"
                insert = duckdb_sql.insert_changed_lines(
                    self.table, name, batch, changed, p.source_server, p.sync_id, p.at
                )
                self.run(self.held[batch], name, insert)
        self.connection.execute(f"DROP TABLE {sql.identifier(changed)}")
        return Outcome(*counts)

    def fetch(self, query: str) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        return self.connection.execute(query).fetchall()
