"""Which warehouse to land in and how to reach it, and a Dagster-free way to open it.

``WarehouseSettings`` is the one place the warehouse switch lives: the Dagster resources, the IO
managers and the CLI all open the warehouse it describes. Field metadata names the environment
variable of each setting (read by ``fhir_assets.settings``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .kinds import KINDS, warehouse_kind
from .protocol import Warehouse
from .snowflake import SnowflakeSettings

DEFAULT_DUCKDB_PATH = ".fhir-assets/warehouse.duckdb"


@dataclass(frozen=True, slots=True)
class DuckDBSettings:
    """The embedded DuckDB warehouse: one file, one writer process at a time."""

    path: str = field(
        default=DEFAULT_DUCKDB_PATH, metadata={"env": "FHIR_DUCKDB_PATH", "help": "DuckDB file"}
    )
    memory_limit: str = field(
        default="128MB",
        metadata={
            "env": "FHIR_DUCKDB_MEMORY_LIMIT",
            "help": "DuckDB memory limit while landing (bounds peak RSS); empty: DuckDB's default",
        },
    )
    lock_wait_s: float = field(
        default=120.0,
        metadata={
            "env": "FHIR_DUCKDB_LOCK_WAIT_S",
            "help": "seconds to wait, saying for whom, while another process holds the file",
        },
    )


@dataclass(frozen=True, slots=True)
class WarehouseSettings:
    """The warehouse of this deployment: ``kind`` picks DuckDB or Snowflake for everything."""

    kind: str = field(
        default="duckdb", metadata={"env": "FHIR_WAREHOUSE", "help": "`duckdb` or `snowflake`"}
    )
    duckdb: DuckDBSettings = field(default_factory=DuckDBSettings)
    snowflake: SnowflakeSettings = field(default_factory=SnowflakeSettings)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            warehouse_kind(self.kind)  # raises, naming the kinds


@contextmanager
def open_duckdb(settings: DuckDBSettings, *, landing: bool = True) -> Iterator[Warehouse]:
    """A ``DuckDBWarehouse`` on a new connection to the file (its folder created first); the
    memory limit applies when ``landing``."""
    from .duckdb import DuckDBWarehouse
    from .duckdb_file import connect_waiting

    Path(settings.path).parent.mkdir(parents=True, exist_ok=True)
    with connect_waiting(settings.path, wait_s=settings.lock_wait_s) as connection:
        limit = settings.memory_limit if landing else ""
        yield DuckDBWarehouse(connection, limit or None)


def open_warehouse(
    settings: WarehouseSettings, *, landing: bool = True
) -> AbstractContextManager[Warehouse]:
    """The configured warehouse, open for landing (``landing``) or queries; closed when the
    block ends. Snowflake mode imports only the connector (no Dagster) and opens no DuckDB file.
    """
    return warehouse_kind(settings.kind).open(settings, landing)
