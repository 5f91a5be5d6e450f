"""The Dagster resource of the DuckDB landing warehouse (Snowflake's is in ``snowflake.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster_duckdb import DuckDBResource

from .duckdb import DuckDBWarehouse


class DuckDBWarehouseResource(DuckDBResource):
    """dagster-duckdb's ``DuckDBResource`` that also opens a landing warehouse on its file.

    Attributes:
        memory_limit: DuckDB memory limit while landing (bounds peak RSS; see
            ``DuckDBWarehouse``); empty for DuckDB's default.
    """

    memory_limit: str = "128MB"

    @contextmanager
    def open_warehouse(self) -> Iterator[DuckDBWarehouse]:
        """A ``DuckDBWarehouse`` on a fresh connection, closed afterwards."""
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with self.get_connection() as connection:
            yield DuckDBWarehouse(connection, self.memory_limit or None)
