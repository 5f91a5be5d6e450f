"""One asset per ViewDefinition: ``["fhir", "<view>"]``, a table built inside the warehouse.

The view's SQL is compiled for the warehouse's dialect and runs there
(``CREATE OR REPLACE TABLE fhir.<view> AS ...``) over the raw table of its resource type, so
nothing passes through Python, in DuckDB and in Snowflake alike.
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from collections.abc import Iterable

import dagster as dg
from dagster import AssetExecutionContext

from ..views.definition import ViewDefinition
from ..views.runner import VIEW_SCHEMA, materialize
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import WarehouseOpener
from .tables import table_metadata

GROUP = "fhir_views"


def build_view_asset(
    view: ViewDefinition,
    warehouse_kind: str = "duckdb",
    io_manager_key: str | None = None,
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """The asset ``["fhir", view.name]``, downstream of ``["fhir_raw", <type lower>]``.

    It re-materializes when the raw asset changes (eager automation condition); downstream
    assets load its table through ``io_manager_key`` (``fhir_io`` in ``build_defs``).
    """
    upstream = dg.AssetKey([RAW_SCHEMA, view.resource.lower()])

    @dg.asset(
        name=view.name,
        key_prefix=[VIEW_SCHEMA],
        group_name=GROUP,
        deps=[upstream],
        kinds={warehouse_kind, "sql"},
        io_manager_key=io_manager_key,
        automation_condition=dg.AutomationCondition.eager(),
        description=f"SQL on FHIR view {view.name!r} over {view.resource}: "
        + ", ".join(column.name for column in view.columns),
        tags={"fhir/resource_type": view.resource},
        pool=pool,  # "duckdb" in DuckDB mode: one writer of the file at a time
    )
    def view_asset(
        context: AssetExecutionContext, landing: dg.ResourceParam[WarehouseOpener]
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        with landing.open_warehouse(landing=False) as warehouse:
            rows = materialize(warehouse, view)
            table = table_metadata(warehouse, VIEW_SCHEMA, view.name)
        seconds = time.monotonic() - started
        context.log.info(f"view {view.name}: {rows} rows in {seconds:.2f} s")
        return dg.MaterializeResult(
            metadata={
                "rows": rows,
                "columns": len(view.columns),
                "duration_s": round(seconds, 3),
                **table,
            }
        )

    return view_asset


def build_view_assets(
    views: Iterable[ViewDefinition],
    warehouse_kind: str = "duckdb",
    io_manager_key: str | None = None,
    pool: str | None = None,
) -> list[dg.AssetsDefinition]:
    """View assets for every view."""
    return [build_view_asset(view, warehouse_kind, io_manager_key, pool) for view in views]
