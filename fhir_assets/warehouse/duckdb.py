"""The embedded default warehouse: a DuckDB file, through dagster-duckdb's IO manager."""

from __future__ import annotations

from pathlib import Path

from dagster_duckdb_pandas import DuckDBPandasIOManager

DEFAULT_PATH = ".fhir-assets/warehouse.duckdb"


def build_duckdb_io_manager(path: str | Path) -> DuckDBPandasIOManager:
    """dagster-duckdb's pandas IO manager on ``path``; the asset key becomes schema.table.

    The folder is created first: dagster-duckdb retries for about 100 s before failing when it
    is missing.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return DuckDBPandasIOManager(database=str(path))
