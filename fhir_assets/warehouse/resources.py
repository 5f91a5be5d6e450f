"""The Dagster resource of the DuckDB landing warehouse (Snowflake's is in ``snowflake.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster_duckdb import DuckDBResource

from .duckdb import DEFAULT_MEMORY_LIMIT, DuckDBWarehouse
from .duckdb_file import connect_waiting


class DuckDBWarehouseResource(DuckDBResource):
    """dagster-duckdb's ``DuckDBResource`` that also opens a landing warehouse on its file.

    Attributes:
        memory_limit: DuckDB memory limit while landing (bounds peak RSS; see
            ``DuckDBWarehouse``); empty for DuckDB's default (80% of RAM).
        lock_wait_s: how long to wait for another process holding the file, saying so, before
            failing with ``WarehouseLockedError``.
    """

    memory_limit: str = DEFAULT_MEMORY_LIMIT
    lock_wait_s: float = 120.0

    @contextmanager
    def open_warehouse(self) -> Iterator[DuckDBWarehouse]:
        """A ``DuckDBWarehouse`` on a fresh connection, closed afterwards."""
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        # Not get_connection(): it retries a held file ~100 s in silence, then raises raw.
        config = {"custom_user_agent": "dagster", **self.connection_config}
        with connect_waiting(self.database, config, self.lock_wait_s) as connection:
            yield DuckDBWarehouse(connection, self.memory_limit or None)
