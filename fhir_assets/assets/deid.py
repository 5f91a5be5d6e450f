"""One de-identified asset per view that takes part: ``["fhir_deid", "<view>"]``, a table built
inside the warehouse from ``fhir.<view>`` (fhir_assets/deid/), with an ERROR check that none of
its text equals a source identifier."""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from ..deid.build import DEID_SCHEMA
from ..deid.incremental import DeidResult, DeidState, build_deid
from ..deid.keyed import DeidKey
from ..deid.policy import ViewPolicy, build_policies
from ..deid.scan import scan
from ..settings import DeidSettings, Settings, env_name
from ..views.definition import ViewDefinition
from ..views.incremental import BuildState
from ..views.runner import VIEW_SCHEMA
from ..warehouse.protocol import WarehouseOpener
from .tables import table_metadata
from .views import HASH as VIEW_HASH
from .views import WATERMARK as VIEW_WATERMARK
from .views import refresh_condition

GROUP = "fhir_deid"
CHECK = "no_source_identifiers"
HASH, KEY_FP, WATERMARK = "fhir_deid/hash", "fhir_deid/key_fingerprint", "fhir_deid/watermark"


class DeidKeyResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """``FHIR_DEID_KEY``, given as ``dg.EnvVar`` so the UI shows the variable, never the key."""

    key: str

    def deid_key(self) -> DeidKey:
        """HMAC's pads of the key (``DeidPolicyError`` if it is too short)."""
        return DeidKey.from_secret(self.key)


def utc_today() -> date:
    return datetime.now(UTC).date()


def latest_metadata(context: AssetExecutionContext, key: dg.AssetKey) -> dict[str, str]:
    """The text metadata of ``key``'s last materialization (empty if none)."""
    event = context.instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return {}
    return {name: str(value.value) for name, value in materialization.metadata.items()}


def view_state(context: AssetExecutionContext, name: str) -> BuildState | None:
    """The hash and watermark of the view's last build (None if it recorded none)."""
    metadata = latest_metadata(context, dg.AssetKey([VIEW_SCHEMA, name]))
    if VIEW_HASH not in metadata:
        return None
    return BuildState(metadata[VIEW_HASH], metadata.get(VIEW_WATERMARK) or None)


def previous_state(context: AssetExecutionContext) -> DeidState | None:
    """This table's last build state (None if it recorded none)."""
    metadata = latest_metadata(context, context.asset_key)
    if HASH not in metadata or KEY_FP not in metadata:
        return None
    return DeidState(metadata[HASH], metadata[KEY_FP], metadata.get(WATERMARK) or None)


def build_metadata(built: DeidResult) -> dict[str, Any]:
    """What a build records: its mode and the state for the next one (never the key)."""
    return {
        "build": built.mode,
        "full_build_reason": built.reason or "none",
        "resources_recomputed": built.changed,
        HASH: built.state.deid_hash,
        KEY_FP: built.state.key_fingerprint,
        WATERMARK: built.state.watermark or "",
    }


def build_deid_asset(
    policy: ViewPolicy,
    scanned: tuple[str, ...],
    warehouse_kind: str = "duckdb",
    pool: str | None = None,
    today: Callable[[], date] = utc_today,
) -> dg.AssetsDefinition:
    """The asset ``["fhir_deid", view]`` downstream of ``["fhir", view]``, rebuilt when the view
    changes (the views' ``refresh_condition``), with the check ``no_source_identifiers``.

    Args:
        scanned: the resource types whose identifiers the check looks for.
        today: the reference day for ages (injected for tests).
    """
    name = policy.view.name
    key = dg.AssetKey([DEID_SCHEMA, name])

    @dg.asset(
        key=key,
        group_name=GROUP,
        deps=[dg.AssetKey([VIEW_SCHEMA, name])],
        kinds={warehouse_kind, "sql"},
        automation_condition=refresh_condition(),  # the views' own: after the view updates
        check_specs=[dg.AssetCheckSpec(CHECK, asset=key, description=CHECK_DESCRIPTION)],
        description=f"De-identified {name!r}: "
        + ", ".join(f"{column.name} ({kind})" for column, kind in policy.methods),
        tags={"fhir/resource_type": policy.view.resource},
        pool=pool,
    )
    def deid_asset(
        context: AssetExecutionContext,
        landing: dg.ResourceParam[WarehouseOpener],
        deid: dg.ResourceParam[DeidKeyResource],
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        with landing.open_warehouse(landing=False) as warehouse:
            built = build_deid(
                warehouse,
                policy,
                deid.deid_key(),
                today(),
                view_state(context, name),
                previous_state(context),
            )
            hits = scan(warehouse, name, scanned)
            table = table_metadata(warehouse, DEID_SCHEMA, name)
        seconds = time.monotonic() - started
        context.log.info(
            f"deid {name}: {built.mode} build ({built.reason or 'incremental'}), "
            f"{built.rows} rows in {seconds:.2f} s, {sum(hits.values())} hits"
        )
        return dg.MaterializeResult(
            metadata={
                "rows": built.rows,
                "duration_s": round(seconds, 3),
                **build_metadata(built),
                **table,
            },
            check_results=[identifier_check(hits)],
        )

    return deid_asset


CHECK_DESCRIPTION = (
    "No text column equals a source identifier (names, identifier values, telecom, address "
    "lines, resource ids)."
)


def identifier_check(hits: dict[str, int]) -> dg.AssetCheckResult:
    """ERROR when any column holds a source identifier; counts per column, never values."""
    found = {column: count for column, count in hits.items() if count}
    return dg.AssetCheckResult(
        check_name=CHECK,
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "columns_scanned": len(hits),
            "hits": sum(found.values()),
            "columns_with_hits": ", ".join(sorted(found)) or "none",
        },
        description=None if not found else f"source identifiers found in {sorted(found)}",
    )


def build_deid_assets(
    policies: Iterable[ViewPolicy],
    warehouse_kind: str = "duckdb",
    pool: str | None = None,
    today: Callable[[], date] = utc_today,
) -> list[dg.AssetsDefinition]:
    """De-identified assets for every policy; each scans for the identifiers of all their
    resource types (the patient compartment the layer reads, and Patient itself)."""
    policies = list(policies)
    scanned = tuple(sorted({p.view.resource for p in policies} | {"Patient"}))
    return [build_deid_asset(p, scanned, warehouse_kind, pool, today) for p in policies]


def build_deid_sensor(tick_s: int = 30) -> dg.AutomationConditionSensorDefinition:
    """The sensor acting on the deid assets' ``refresh_condition``, running by default like
    the views' (``build_view_sensor``), so a view's rebuild leads to its de-identified one."""
    return dg.AutomationConditionSensorDefinition(
        "fhir_deid_refresh_sensor",
        target=dg.AssetSelection.groups(GROUP),
        minimum_interval_seconds=tick_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rebuilds the de-identified tables after their views change.",
    )


def build_deid_layer(
    settings: Settings, views: Iterable[ViewDefinition], pool: str | None = None
) -> tuple[list[dg.AssetsDefinition], list[dg.SensorDefinition], dict[str, Any]]:
    """The ``fhir_deid`` assets, their sensor and their ``deid`` resource, when
    ``FHIR_DEID_KEY`` is set (nothing otherwise).

    Raises:
        DeidPolicyError: the key is too short, or a view that takes part has a column without
            a method (and the like).
    """
    deid = settings.deid
    if not deid.key:
        return [], [], {}
    DeidKey.from_secret(deid.key)  # a short key is refused when the code location loads
    policies = build_policies(views, deid.policy)
    secret: Any = (
        dg.EnvVar(env_name(DeidSettings, "key")) if settings.secrets_from_env else deid.key
    )
    assets = build_deid_assets(policies, settings.warehouse.kind, pool)
    sensors = [build_deid_sensor()] if assets else []
    return assets, sensors, {"deid": DeidKeyResource(key=secret)}
