"""The embedded default warehouse: a DuckDB file.

``DuckDBWarehouse`` holds the connection and its settings, and opens a landing: it creates the
tables, chooses append or merge (``duckdb_landing.py``'s module doc), sets DuckDB up for the
landing's run and, whatever happens, sets it back. The landing session itself is
``duckdb_landing.DuckDBLanding``.
This module imports no dagster (the bench and ``fhir-assets land`` stay light); the Dagster
resource is in ``warehouse/resources.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from . import duckdb_sql, sql
from .duckdb_landing import COMMIT_ROWS, DuckDBLanding
from .errors import WarehouseMemoryError
from .layout import RAW_SCHEMA
from .protocol import Provenance

DEFAULT_PATH = ".fhir-assets/warehouse.duckdb"
# The landing's memory limit unless configured (``FHIR_DUCKDB_MEMORY_LIMIT``, ``fhir-assets land
# --memory-limit``, the resource's ``memory_limit``).
DEFAULT_MEMORY_LIMIT = "128MB"
# DuckDB's checkpoint_threshold while a landing runs (its default: 16 MiB of write-ahead log).
# A merge landing commits every group (``duckdb_landing.COMMIT_ROWS``); past the default
# threshold each commit was also a checkpoint, which rewrote the table's changed row groups:
# re-landing 300 MB in which every resource changed spent 4 of its 9.8 s in COMMIT. With this
# threshold the groups' changes stay in the log and one checkpoint (at the next commit past
# DuckDB's own threshold, or when the file is closed) writes them: 3.5 s + 0.7 s
# (bench/landing.py ``land-changed``). The log on disk grows by at most this much before a
# checkpoint (rows appended a row group or more at a time go to the database file directly,
# the log only points at them).
LANDING_CHECKPOINT_THRESHOLD = "1GB"


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
        commit_rows: rows staged per group applied (see ``DuckDBLanding``).
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
        self.connection.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.identifier(RAW_SCHEMA)}")
        self.connection.execute(sql.create_raw_table(self.dialect, table))
        self.connection.execute(sql.create_quarantine_table(self.dialect))
        if history:
            self.connection.execute(sql.create_raw_table(self.dialect, sql.history_table(table)))
        append = not history and not self.fetch(
            duckdb_sql.holds_server(table, provenance.source_server)
        )
        [(threads, threshold)] = self.fetch(
            "SELECT current_setting('threads'), current_setting('checkpoint_threshold')"
        )
        # One DuckDB thread: the landing's other thread parses JSON in Python on the second core
        # (bench/landing.py: 1.4 s for 200 MB with one thread, 1.9 s with two on 2 cores).
        self.connection.execute("SET threads = 1")
        literal = sql.DUCKDB.literal(LANDING_CHECKPOINT_THRESHOLD)
        self.connection.execute(f"SET checkpoint_threshold = {literal}")
        landing = DuckDBLanding(
            self.connection, table, provenance, history, append, self.commit_rows
        )
        try:
            yield landing
        except BaseException as exc:
            # append: nothing of this landing stays. merge: a failed merge rolled its transaction
            # (up to duckdb_landing.GROUPS_PER_COMMIT groups) back already; after another error
            # (the input failed) what was staged is applied and stays (re-landing is idempotent).
            if append or isinstance(exc, duckdb.Error | WarehouseMemoryError):
                landing.rollback()
            else:
                landing.salvage()
            raise
        finally:
            self.connection.execute(f"SET threads = {int(threads)}")
            self.connection.execute(
                f"SET checkpoint_threshold = {sql.DUCKDB.literal(str(threshold))}"
            )
