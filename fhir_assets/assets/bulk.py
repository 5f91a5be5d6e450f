"""Bulk Data exports as a Dagster asset: one dynamic partition per export, downloaded with
``run_export`` (resumable from its folder) and landed through the one landing path.

The export sensor (``fhir_assets.sensors``) kicks exports off and requests a run of
``bulk_land`` when the manifest is ready, passing the status URL in the run config; launched by
hand (a new partition, no config) the asset kicks off an export itself. Killed mid-download, a
rerun of the partition resumes from the state file in the partition's folder: no second kick-off.
Every raw table the export landed gets a materialization of its raw asset (counts and table
metadata, as a REST sync records), so lineage, eager views and checks see bulk landings too; a
type outside the configured catalog gets one as well (an external asset ``fhir_raw/<type>``).

Without configured types the kick-off sends no ``_type``: the server exports every type it
holds and all of them land. The CapabilityStatement is not asked: servers export types it omits.
A configured type with no output file is named in the metadata (``missing_types``) and fails the
WARN check ``requested_types_exported`` (a full export only: an incremental one has no file for
a type nothing changed in).
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import dataclasses
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext
from pydantic import Field

from ..fhir.bulk import (
    BulkClient,
    BulkOptions,
    ExportJob,
    ExportRequest,
    ExportResult,
    ExportState,
    Progress,
    format_instant,
    run_export,
)
from ..fhir.client import redact
from ..fhir.names import check_resource_type
from ..fhir.ndjson import MAX_LINE_BYTES
from ..resources import FhirServerResource
from ..sync import use_server_profile
from ..warehouse import sql
from ..warehouse.export_folder import land_deletions
from ..warehouse.files import folder_entries
from ..warehouse.landing import LandingOptions, LandingResult, land
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import Provenance, Warehouse, WarehouseOpener
from .tables import table_metadata

log = logging.getLogger(__name__)
EXPORTS = dg.DynamicPartitionsDefinition(name="fhir_bulk_export")
BULK_KEY = dg.AssetKey(["fhir_bulk", "export"])
BULK_JOB = "bulk_land"
EXPORTED_CHECK = "requested_types_exported"


class BulkExportResource(dg.ConfigurableResource):  # type: ignore[misc]
    """What to export and where its files go (FHIR_BULK_* variables)."""

    folder: str = Field(description="exports land in FOLDER/<partition> (FHIR_BULK_DIR)")
    level: str = Field(default="system", description="system | patient | group")
    group_id: str | None = Field(default=None, description="Group id (Epic, Oracle: required)")
    types: str = Field(
        default="",
        description="comma-separated _type (default: none sent, so the server exports every "
        "type it holds, and every type lands)",
    )
    lenient: bool = Field(
        default=False, description="Prefer: handling=lenient (skip what the server lacks)"
    )
    max_connections: int = Field(default=5, description="parallel downloads")
    max_wait_s: float = Field(default=300.0, description="cap on one Retry-After")
    total_timeout_s: float = Field(default=7 * 24 * 3600.0, description="give up after")
    max_line_bytes: int = Field(
        default=MAX_LINE_BYTES, description="a longer line is bad (FHIR_MAX_LINE_BYTES)"
    )

    def request(self, since: str | None) -> ExportRequest:
        """The export request, incremental from ``since`` (a previous ``transactionTime``).
        Without configured types: no ``_type``, every type the server exports."""
        types = tuple(t.strip() for t in self.types.split(",") if t.strip())
        since = format_instant(since) if since else None
        return ExportRequest(self.level, self.group_id, types, since)

    def options(self) -> BulkOptions:
        return BulkOptions(
            max_connections=self.max_connections,
            max_wait_s=self.max_wait_s,
            total_timeout_s=self.total_timeout_s,
            lenient=self.lenient,
            max_line_bytes=self.max_line_bytes,
        )

    def folder_for(self, partition: str) -> Path:
        return Path(self.folder) / partition


class BulkExportConfig(dg.Config):  # type: ignore[misc]
    """A kicked-off export handed over by the sensor; empty: the run kicks off its own."""

    status_url: str = ""
    started_at: float = 0.0
    since: str = ""


def seed_state(folder: Path, request: ExportRequest, config: BulkExportConfig) -> ExportRequest:
    """Record the sensor's job in the folder (once), so ``run_export`` does not kick off again.
    Returns the request the folder holds (a resumed run keeps its first request)."""
    state = ExportState.load(folder)
    if state.request is not None:
        return state.request
    if config.status_url:
        state.request, state.job = request, ExportJob(config.status_url, config.started_at)
        state.save()
    return request


def land_export(
    warehouse: Warehouse, result: ExportResult, provenance: Provenance, options: LandingOptions
) -> list[LandingResult]:
    """Land each type's output files, then each type's tombstones from the ``deleted`` files
    (after the resources, so a resource deleted in this export ends deleted: ``merge_sql`` rule 4).

    Any R4/R4B type lands, in a table made on first sight. An output file of another name stops
    the landing before anything lands (``UnsafeNameError``, naming the value); a deletion entry
    of another name is quarantined with its line (``land_deletions``).
    """
    by_type: dict[str, list[Path]] = {}
    for resource_type, path in result.output_files():
        check_resource_type(resource_type, source="the export manifest")
        by_type.setdefault(resource_type, []).append(path)
    limit = options.max_line_bytes  # FHIR_MAX_LINE_BYTES: a longer line is quarantined unread
    results = [
        land(warehouse, t, folder_entries(paths, result.folder, None, limit), provenance, options)
        for t, paths in sorted(by_type.items())
    ]
    results.extend(land_deletions(warehouse, result.deleted_files(), result.folder, provenance,
                                  options))  # fmt: skip
    return results


def missing_types(request: ExportRequest, result: ExportResult) -> list[str]:
    """The types the request named that the export has no output file of."""
    exported = {resource_type for resource_type, _ in result.output_files()}
    return [t for t in request.types if t not in exported]


def exported_check(request: ExportRequest, result: ExportResult) -> dg.AssetCheckResult:
    """``requested_types_exported``: WARN when a full export lacks a requested type."""
    missing = missing_types(request, result)
    full = request.since is None
    return dg.AssetCheckResult(
        check_name=EXPORTED_CHECK,
        passed=not (missing and full),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "missing_types": dg.MetadataValue.json(missing),
            "why": "the server holds none of them, or does not export them"
            if full
            else "incremental export: types nothing changed in have no file",
        },
    )


COUNTS = ("seen", "landed", "updated", "deleted", "unchanged", "quarantined")


def raw_materializations(
    warehouse: Warehouse,
    landed: list[LandingResult],
    server: str,
    source_counts: dict[str, int] | None,
) -> list[dg.AssetMaterialization]:
    """One materialization of ``fhir_raw/<type>`` per table the export landed into, with the
    metadata a REST sync records (``source_count`` only for a full export: an incremental one
    does not say how many resources the server holds). A type without a raw asset in the
    configured catalog shows in Dagster as an external asset."""
    by_type: dict[str, list[LandingResult]] = {}
    for result in landed:  # resources and tombstones of a type are two landings
        by_type.setdefault(result.resource_type, []).append(result)
    events = []
    for resource_type, results in by_type.items():
        table = resource_type.lower()
        if not warehouse.fetch(sql.table_exists(table))[0][0]:  # every line quarantined
            continue
        metadata: dict[str, object] = {
            name: sum(getattr(r, name) for r in results) for name in COUNTS
        }
        metadata["source_server"] = server
        if source_counts is not None:
            metadata["source_count"] = source_counts.get(resource_type, 0)
        metadata |= table_metadata(warehouse, RAW_SCHEMA, table)
        key = dg.AssetKey([RAW_SCHEMA, table])
        events.append(dg.AssetMaterialization(asset_key=key, metadata=metadata))  # type: ignore[arg-type]
    return events


def build_bulk_asset(
    options: LandingOptions | None = None, pool: str | None = None
) -> dg.AssetsDefinition:
    """The partitioned asset ``["fhir_bulk", "export"]``: download one export, land it, and
    record a materialization of each raw table it landed (a raw asset of the catalog or, for
    another type, an external one), with the WARN check ``requested_types_exported``.
    ``pool``: the FHIR server's (``fhir:<host>``)."""

    @dg.asset(
        key=BULK_KEY,
        partitions_def=EXPORTS,
        group_name="fhir_bulk",
        kinds={"fhir"},
        description="One Bulk Data $export per partition, landed into the fhir_raw tables.",
        pool=pool,
        check_specs=[
            dg.AssetCheckSpec(
                EXPORTED_CHECK,
                asset=BULK_KEY,
                description="every type the export asked for (FHIR_BULK_TYPES) has output",
            )
        ],
    )
    def bulk_export(
        context: AssetExecutionContext,
        config: BulkExportConfig,
        fhir: FhirServerResource,
        bulk: BulkExportResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        folder = bulk.folder_for(context.partition_key)

        def log(progress: Progress) -> None:
            context.log.info(progress.message)

        with fhir.get_client() as client:
            profile = use_server_profile(client, fhir)  # vendor headers, rate limit
            bulk_options = dataclasses.replace(bulk.options(), group_only=profile.bulk_group_only)
            # a resumed export keeps its request (seed_state)
            request = seed_state(folder, bulk.request(config.since or None), config)
            with BulkClient(client, bulk_options) as exporter:
                result = run_export(exporter, request, folder, log)
        moment = result.manifest.transaction_time
        server = redact(fhir.base_url)
        provenance = Provenance(
            server, context.partition_key, datetime.now(UTC), datetime.fromisoformat(moment)
        )
        full = request.since is None
        with landing.open_warehouse() as warehouse:
            landed = land_export(warehouse, result, provenance, options or LandingOptions())
            events = raw_materializations(
                warehouse, landed, server, result.counts() if full else None
            )
        for event in events:
            context.log_event(event)
        for issue in result.fatal:
            context.log.warning("export error file: %s", issue)
        check = exported_check(request, result)
        return dg.MaterializeResult(
            check_results=[check],
            metadata={
                "missing_types": check.metadata["missing_types"],
                "transaction_time": moment,
                "resources": sum(result.counts().values()),
                "counts": dg.MetadataValue.json(result.counts()),
                "landed": sum(r.landed + r.updated for r in landed),
                "deleted": sum(r.deleted for r in landed),
                "unchanged": sum(r.unchanged for r in landed),
                "quarantined": sum(r.quarantined for r in landed),
                "bad_lines": len(result.bad_lines()),
                "fatal_issues": len(result.fatal),
                "duration_s": round(time.monotonic() - started, 3),
            },
        )

    return bulk_export


def build_bulk_job():  # type: ignore[no-untyped-def]
    """``bulk_land``: materialize one export partition (run by the sensor or by hand)."""
    return dg.define_asset_job(BULK_JOB, selection=[BULK_KEY])  # partitions from the asset
