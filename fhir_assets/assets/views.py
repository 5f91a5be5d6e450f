"""One asset per ViewDefinition: ``["fhir", "<view>"]``, a table built inside DuckDB.

The view's SQL runs in the warehouse (``create or replace table fhir.<view> as ...``) over the
raw table of its resource type, so nothing passes through Python.
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from collections.abc import Iterable

import dagster as dg
from dagster import AssetExecutionContext
from dagster_duckdb import DuckDBResource

from ..views.definition import ViewDefinition
from ..views.runner import VIEW_SCHEMA, materialize
from ..warehouse.layout import RAW_SCHEMA

GROUP = "fhir_views"


def build_view_asset(view: ViewDefinition) -> dg.AssetsDefinition:
    """The asset ``["fhir", view.name]``, downstream of ``["fhir_raw", <type lower>]``.

    It re-materializes when the raw asset changes (eager automation condition).
    """
    upstream = dg.AssetKey([RAW_SCHEMA, view.resource.lower()])

    @dg.asset(
        name=view.name,
        key_prefix=[VIEW_SCHEMA],
        group_name=GROUP,
        deps=[upstream],
        kinds={"duckdb", "sql"},
        automation_condition=dg.AutomationCondition.eager(),
        description=f"SQL on FHIR view {view.name!r} over {view.resource}: "
        + ", ".join(column.name for column in view.columns),
        tags={"fhir/resource_type": view.resource},
    )
    def view_asset(context: AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        started = time.monotonic()
        with duckdb.get_connection() as con:
            rows = materialize(con, view)
        seconds = time.monotonic() - started
        context.log.info(f"view {view.name}: {rows} rows in {seconds:.2f} s")
        return dg.MaterializeResult(
            metadata={
                "rows": rows,
                "columns": len(view.columns),
                "duration_s": round(seconds, 3),
                "dagster/row_count": rows,
            }
        )

    return view_asset


def build_view_assets(views: Iterable[ViewDefinition]) -> list[dg.AssetsDefinition]:
    """View assets for every view."""
    return [build_view_asset(view) for view in views]
