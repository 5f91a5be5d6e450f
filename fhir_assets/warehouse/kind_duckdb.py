"""The embedded DuckDB warehouse as a kind (``kinds.py``): one file, one writer at a time."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import sql
from .kinds import WarehouseKind

if TYPE_CHECKING:
    from ..settings import Settings
    from .protocol import Warehouse
    from .settings import WarehouseSettings


def describe(settings: WarehouseSettings) -> str:
    """The DuckDB file."""
    return f"DuckDB file {settings.duckdb.path}"


@contextlib.contextmanager
def demo(
    settings: WarehouseSettings, home: Path, echo: Callable[[str], None], chosen: Path | None
) -> Iterator[WarehouseSettings]:
    """The file the command chose (``--duckdb``), else ``home``/warehouse.duckdb (never
    FHIR_DUCKDB_PATH: the demo keeps to its own folder)."""
    path = str(chosen or home / "warehouse.duckdb")
    yield dataclasses.replace(settings, duckdb=dataclasses.replace(settings.duckdb, path=path))


def open_warehouse(settings: WarehouseSettings, landing: bool) -> AbstractContextManager[Warehouse]:
    """A ``DuckDBWarehouse`` on a new connection to the file."""
    from .settings import open_duckdb

    return open_duckdb(settings.duckdb, landing=landing)


def resources(settings: Settings) -> tuple[Any, Any]:
    """The ``landing`` resource on the file and dagster-duckdb-pandas' IO manager."""
    from .resources import DuckDBWarehouseResource

    duckdb = settings.warehouse.duckdb
    landing = DuckDBWarehouseResource(
        database=duckdb.path, memory_limit=duckdb.memory_limit, lock_wait_s=duckdb.lock_wait_s
    )
    return landing, io_manager(settings.warehouse, None)


def io_manager(settings: WarehouseSettings, secrets: dict[str, Any] | None) -> Any:
    """dagster-duckdb-pandas' IO manager on the file."""
    from .io_managers import duckdb_io_manager

    return duckdb_io_manager(settings, secrets)


def audit_writer(connection: Any) -> Any:
    """The write-back audit writer on a DuckDB connection."""
    from ..writeback.audit import DuckDBAuditWriter

    return DuckDBAuditWriter(connection)


KIND = WarehouseKind(
    name="duckdb",
    dialect=sql.DUCKDB,
    one_writer=True,
    describe=describe,
    open=open_warehouse,
    resources=resources,
    io_manager=io_manager,
    audit_writer=audit_writer,
    demo=demo,
)
