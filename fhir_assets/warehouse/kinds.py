"""The warehouse seam: the kinds of warehouse, decided in one place.

Adding a warehouse is two modules and one line in ``KINDS``: the warehouse itself (like
``duckdb.py``: a ``protocol.Warehouse`` and its ``LandingSession``) and its kind (like
``kind_duckdb.py``: a ``WarehouseKind`` naming its SQL dialect, how to open it, its Dagster
resources and audit writer, and whether one process writes at a time). The rest of the code asks
``warehouse_kind(settings.kind)`` instead of comparing names. Its connection settings are a field
of ``settings.WarehouseSettings``; the views compiler keeps its own dialects
(``views/compiler.py``).

A kind module imports nothing heavy at import time (no Dagster, no Snowflake connector): its
functions import what they need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .sql import Dialect

if TYPE_CHECKING:
    from ..settings import Settings
    from .protocol import Warehouse
    from .settings import WarehouseSettings


@dataclass(frozen=True, slots=True)
class WarehouseKind:
    """One kind of warehouse.

    Attributes:
        name: its ``FHIR_WAREHOUSE`` value.
        dialect: the words of the landing SQL (``sql.Dialect``).
        one_writer: a file one process writes at a time (DuckDB): steps run in one process and
            queue on the file's pool, and a landing first waits for a foreign lock.
        describe: where the warehouse is, for messages (no secrets).
        open: ``open(settings, landing)``: the warehouse, open for landing or queries.
        resources: ``resources(settings)``: the Dagster ``landing`` resource and IO manager.
        io_manager: ``io_manager(settings, secrets)``: the pandas IO manager alone.
        audit_writer: ``audit_writer(connection)``: the write-back audit writer.
    """

    name: str
    dialect: Dialect
    one_writer: bool
    describe: Callable[[WarehouseSettings], str]
    open: Callable[[WarehouseSettings, bool], AbstractContextManager[Warehouse]]
    resources: Callable[[Settings], tuple[Any, Any]]
    io_manager: Callable[[WarehouseSettings, dict[str, Any] | None], Any]
    audit_writer: Callable[[Any], Any]


# name -> the module defining its ``KIND`` (imported when first asked for)
KINDS: dict[str, str] = {
    "duckdb": "fhir_assets.warehouse.kind_duckdb",
    "snowflake": "fhir_assets.warehouse.kind_snowflake",
}


def warehouse_kind(name: str) -> WarehouseKind:
    """The kind named ``name``.

    Raises:
        ValueError: no such kind; the message lists the kinds.
    """
    if name not in KINDS:
        names = " or ".join(repr(k) for k in KINDS)
        raise ValueError(f"FHIR_WAREHOUSE must be {names}, not {name!r}")
    kind: WarehouseKind = importlib.import_module(KINDS[name]).KIND
    return kind
