"""One asset per ViewDefinition: ``["fhir", "<view>"]``, a table built inside the warehouse.

The view's SQL is compiled for the warehouse's dialect and runs there over the raw table of its
resource type, so nothing passes through Python, in DuckDB and in Snowflake alike. A build after
the first updates only the resources landed since the last one (``views.incremental``), from the
watermark and query hash kept in the materialization metadata. Views rebuild themselves after
their raw table changes (``refresh_condition``, acted on by ``build_view_sensor``, running by
default).
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from collections.abc import Iterable

import dagster as dg
from dagster import AssetExecutionContext

from ..views.definition import ViewDefinition
from ..views.incremental import VIEW_SCHEMA, BuildState, build_view
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import WarehouseOpener
from .tables import table_metadata

GROUP = "fhir_views"
HASH, WATERMARK = "fhir/view_hash", "fhir/watermark"


def refresh_condition() -> dg.AutomationCondition:
    """Rebuild once the raw table has new data and nothing upstream is still running.

    Not ``eager()``: that one also waits until no upstream partition is missing, so a view over
    a partitioned raw table whose history is not fully backfilled would never refresh.
    """
    condition = dg.AutomationCondition
    return (
        (condition.newly_missing() | condition.any_deps_updated()).since_last_handled()
        & ~condition.any_deps_in_progress()
        & ~condition.in_progress()
    ).with_label("raw table updated")


def build_view_sensor(tick_s: int = 30) -> dg.AutomationConditionSensorDefinition:
    """The sensor that acts on the views' ``refresh_condition``: **running by default**, so a
    raw materialization (UI, schedule, backfill, sensor) leads to the views' rebuild without
    the user turning anything on (Dagster's own default automation sensor starts stopped)."""
    return dg.AutomationConditionSensorDefinition(
        "fhir_views_refresh_sensor",
        target=dg.AssetSelection.groups(GROUP),
        minimum_interval_seconds=tick_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rebuilds the SQL on FHIR views after their raw tables change.",
    )


def previous_state(context: AssetExecutionContext) -> BuildState | None:
    """The watermark and query hash of this view's last materialization, if it recorded them."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    materialization = event.asset_materialization if event else None
    if materialization is None or HASH not in materialization.metadata:
        return None
    metadata = materialization.metadata
    watermark = metadata.get(WATERMARK)
    text = watermark.value if watermark is not None else None
    return BuildState(str(metadata[HASH].value), str(text) if text else None)


def column_descriptions(view: ViewDefinition, schema: dg.TableSchema) -> dg.TableSchema:
    """The warehouse's column schema with each ViewDefinition column's ``description``."""
    described = {column.name: column.description for column in view.columns}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(column.name, column.type, described.get(column.name))
            for column in schema.columns
        ]
    )


def build_view_asset(
    view: ViewDefinition,
    warehouse_kind: str = "duckdb",
    io_manager_key: str | None = None,
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """The asset ``["fhir", view.name]``, downstream of ``["fhir_raw", <type lower>]``.

    It re-materializes when the raw asset changes (``refresh_condition``); downstream
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
        automation_condition=refresh_condition(),
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
            built = build_view(warehouse, view, previous_state(context))
            table = table_metadata(warehouse, VIEW_SCHEMA, view.name)
        table["dagster/column_schema"] = column_descriptions(view, table["dagster/column_schema"])
        seconds = time.monotonic() - started
        context.log.info(
            f"view {view.name}: {built.mode} build, {built.changed} resources, "
            f"{built.rows} rows in {seconds:.2f} s"
        )
        return dg.MaterializeResult(
            metadata={
                "rows": built.rows,
                "columns": len(view.columns),
                "duration_s": round(seconds, 3),
                "build": built.mode,
                "resources_recomputed": built.changed,
                HASH: built.state.view_hash,
                WATERMARK: built.state.watermark or "",
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
