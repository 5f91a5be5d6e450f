"""The warehouse seam: the kinds of warehouse, decided in one place.

Adding a warehouse is three modules and one line in ``KINDS``: the warehouse itself (like
``duckdb.py``: a ``protocol.Warehouse`` and its ``LandingSession``), its kind (like
``kind_duckdb.py``: a ``WarehouseKind`` with its SQL words (``sql.Dialect``: the landing's,
the de-identification's keyed hash and date arithmetic, scratch tables), how to open it, its
Dagster resources and audit writer, the demo's settings, and whether one process writes at a
time), and the views compiler's dialect (like ``views/duckdb_dialect.py``, named by
``sql.Dialect.views``). The rest of the code asks ``warehouse_kind(settings.kind)`` (the views
compiler ``views.compiler.dialect_for``) instead of comparing names. Its connection settings are
a field of ``settings.WarehouseSettings``.

A kind module imports nothing heavy at import time (no Dagster, no Snowflake connector): its
functions import what they need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
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
        demo: ``demo(settings, home, echo, chosen)``: the settings ``fhir-assets demo`` lands
            with (``settings`` from the environment; ``home`` the demo's folder; ``echo`` says
            what it set up; ``chosen`` a DuckDB file named by ``--duckdb``), open while the
            demo runs. Raises ``RuntimeError`` when it cannot.
    """

    name: str
    dialect: Dialect
    one_writer: bool
    describe: Callable[[WarehouseSettings], str]
    open: Callable[[WarehouseSettings, bool], AbstractContextManager[Warehouse]]
    resources: Callable[[Settings], tuple[Any, Any]]
    io_manager: Callable[[WarehouseSettings, dict[str, Any] | None], Any]
    audit_writer: Callable[[Any], Any]
    demo: Callable[
        [WarehouseSettings, Path, Callable[[str], None], Path | None],
        AbstractContextManager[WarehouseSettings],
    ]


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
