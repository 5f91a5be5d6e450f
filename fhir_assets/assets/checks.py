"""Asset checks on every raw table, declared and evaluated by the raw asset itself.

Per type: the current (not deleted) row count equals what the asset saw at the source
(``source_count`` in its materialization metadata: the search total or a manifest count); ids
are unique per server; no ``last_updated`` lies in the future; the share of quarantined entries
stays under a threshold; and (warn) patient references resolve to a landed Patient.
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from ..catalog import ResourceSpec
from ..extraction import EXTRACT_SOURCE
from ..warehouse import sql
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import Warehouse, WarehouseOpener

# The element of each type that points at its Patient (FHIR R4 compartment definitions).
PATIENT_REFERENCE: dict[str, str] = {
    "AllergyIntolerance": "patient",
    "Immunization": "patient",
    "FamilyMemberHistory": "patient",
    "Claim": "patient",
    "ExplanationOfBenefit": "patient",
    "Coverage": "beneficiary",
}
NO_PATIENT_REFERENCE = {"Patient", "Practitioner", "PractitionerRole", "Organization", "Location"}
CLOCK_SKEW = timedelta(minutes=5)  # servers' clocks run a little ahead of ours


def raw_check_specs(spec: ResourceSpec) -> list[dg.AssetCheckSpec]:
    """The checks of one raw table, declared by its asset (``check_specs``): they run inside the
    asset's step, on the connection it landed with, rather than as a step (a process) of their own.
    """
    key = dg.AssetKey([RAW_SCHEMA, spec.table])
    names = ["source_count", "id_unique", "no_future_last_updated", "invalid_share"]
    return [dg.AssetCheckSpec(name, asset=key) for name in names]


def raw_check_results(
    warehouse: Warehouse,
    spec: ResourceSpec,
    metadata: dict[str, Any],
    max_invalid_share: float = 0.01,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[dg.AssetCheckResult]:
    """Evaluate :func:`raw_check_specs` right after a landing.

    Args:
        warehouse: the warehouse the asset landed into (still open).
        metadata: the landing's metadata (``source_server``, ``source_count``, ``seen``...).
        max_invalid_share: the check fails when quarantined / seen exceeds this.
        now: the clock, for the future-``last_updated`` check.
    """
    results = [
        count_check(warehouse, spec.table, metadata),
        unique_check(warehouse, spec.table),
        future_check(warehouse, spec.table, now()),
        share_check(metadata, max_invalid_share),
    ]
    return results


def build_reference_checks(
    catalog: tuple[ResourceSpec, ...], pool: str | None = None
) -> list[dg.AssetChecksDefinition]:
    """(warn) Patient references resolve, for every type that has them: one step for all types
    (it reads two tables, so it runs after the Patient table is landed, not inside each asset).
    ``pool``: ``duckdb`` in DuckDB mode."""
    keys = {
        dg.AssetKey([RAW_SCHEMA, spec.table]): spec
        for spec in catalog
        if spec.resource_type not in NO_PATIENT_REFERENCE
    }
    if not keys:
        return []
    patient = dg.AssetKey([RAW_SCHEMA, "patient"])
    deps = [patient] if any(spec.resource_type == "Patient" for spec in catalog) else []
    specs = [
        dg.AssetCheckSpec("patient_references", asset=key, additional_deps=deps) for key in keys
    ]

    @dg.multi_asset_check(specs=specs, name="raw_patient_references", can_subset=True, pool=pool)
    def reference_checks(
        context: dg.AssetCheckExecutionContext, landing: dg.ResourceParam[WarehouseOpener]
    ) -> Iterator[dg.AssetCheckResult]:
        with landing.open_warehouse(landing=False) as warehouse:
            for check_key in sorted(context.selected_asset_check_keys, key=str):
                spec = keys[check_key.asset_key]
                field = PATIENT_REFERENCE.get(spec.resource_type, "subject")
                yield reference_check(warehouse, spec.table, field, check_key.asset_key)

    return [reference_checks]


def scalar(warehouse: Warehouse, query: str) -> int:
    """The single integer a query returns."""
    return int(warehouse.fetch(query)[0][0])


def count_check(warehouse: Warehouse, table: str, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    """Current rows of this server == the count the asset saw at the source."""
    server, expected = metadata.get("source_server"), metadata.get("source_count")
    if server is None or expected is None:
        return dg.AssetCheckResult(
            check_name="source_count",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="no source count to compare (no materialization, or the server "
            "answers no _summary=count)",
        )
    where = f"NOT deleted AND source_server = {warehouse.dialect.literal(str(server))}"
    until = metadata.get("source_count_until")
    if until is not None:  # the server counted what was last updated before the synced window's end
        stamp = warehouse.dialect.timestamp_type
        where += f" AND last_updated < CAST({warehouse.dialect.literal(str(until))} AS {stamp})"
    landed = scalar(
        warehouse,
        f"SELECT COUNT(*) FROM {sql.qualified(table)} WHERE {where}",  # noqa: S608 (catalog name, quoted values)
    )
    return dg.AssetCheckResult(
        check_name="source_count",
        passed=landed == expected,
        metadata={"source_count": expected, "current_rows": landed},
    )


def unique_check(warehouse: Warehouse, table: str) -> dg.AssetCheckResult:
    """No (source_server, id) appears twice in the current table."""
    duplicates = scalar(
        warehouse,
        "SELECT COUNT(*) FROM (SELECT source_server, id FROM "  # noqa: S608 (catalog name)
        f"{sql.qualified(table)} GROUP BY source_server, id HAVING COUNT(*) > 1) AS d",
    )
    return dg.AssetCheckResult(
        check_name="id_unique", passed=duplicates == 0, metadata={"duplicate_ids": duplicates}
    )


def future_check(warehouse: Warehouse, table: str, now: datetime) -> dg.AssetCheckResult:
    """No meta.lastUpdated later than now (plus a little clock skew)."""
    limit = warehouse.dialect.to_timestamp(
        warehouse.dialect.literal((now + CLOCK_SKEW).isoformat())
    )
    future = scalar(
        warehouse,
        f"SELECT COUNT(*) FROM {sql.qualified(table)} WHERE last_updated > {limit}",  # noqa: S608
    )
    return dg.AssetCheckResult(
        check_name="no_future_last_updated", passed=future == 0, metadata={"future_rows": future}
    )


def share_check(metadata: dict[str, Any], max_share: float) -> dg.AssetCheckResult:
    """The last landing's quarantined share stays at or under ``max_share``."""
    seen, quarantined = int(metadata.get("seen", 0)), int(metadata.get("quarantined", 0))
    share = quarantined / seen if seen else 0.0
    return dg.AssetCheckResult(
        check_name="invalid_share",
        passed=share <= max_share,
        metadata={"quarantined": quarantined, "seen": seen, "share": share, "max": max_share},
    )


def reference_check(
    warehouse: Warehouse, table: str, field: str, asset_key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
    """(warn) Every ``<field>.reference`` of the form ``Patient/<id>`` has a landed Patient
    (``asset_key`` names the asset when one check step covers several)."""
    name, severity = "patient_references", dg.AssetCheckSeverity.WARN
    if scalar(warehouse, sql.table_exists("patient")) == 0:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=name,
            passed=False,
            severity=severity,
            description="no Patient table",
        )
    ref = sql.json_text(warehouse.dialect, "r.resource", f"{field}.reference")
    # what $extract made lands under "<server>#extract" and refers to that server's patients
    suffix = warehouse.dialect.literal(EXTRACT_SOURCE)
    server = (
        f"CASE WHEN RIGHT(r.source_server, {len(EXTRACT_SOURCE)}) = {suffix} "
        f"THEN LEFT(r.source_server, LENGTH(r.source_server) - {len(EXTRACT_SOURCE)}) "
        "ELSE r.source_server END"
    )
    dangling = scalar(
        warehouse,
        f"SELECT COUNT(*) FROM {sql.qualified(table)} AS r "  # noqa: S608 (catalog names)
        f"LEFT JOIN {sql.qualified('patient')} AS p ON p.source_server = {server} "
        f"AND NOT p.deleted AND {ref} = 'Patient/' || p.id "
        f"WHERE NOT r.deleted AND {ref} LIKE 'Patient/%' AND p.id IS NULL",
    )
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=dangling == 0,
        severity=severity,
        metadata={"unresolved_patient_references": dangling, "element": field},
    )
