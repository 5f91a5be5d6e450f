"""Bulk Data exports as a Dagster asset: one dynamic partition per export, downloaded with
``run_export`` (resumable from its folder) and landed through the one landing path.

The export sensor (``fhir_assets.sensors``) kicks exports off and requests a run of
``bulk_land`` when the manifest is ready, passing the status URL in the run config; launched by
hand (a new partition, no config) the asset kicks off an export itself. Killed mid-download, a
rerun of the partition resumes from the state file in the partition's folder: no second kick-off.
Every raw table the export landed gets a materialization of its raw asset (counts and table
metadata, as a REST sync records), so lineage, eager views and checks see bulk landings too.
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import dataclasses
import logging
import time
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext
from pydantic import Field

from ..catalog import BY_TYPE, ResourceSpec
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
    server_types,
)
from ..fhir.client import FhirClient, redact
from ..fhir.names import check_resource_type
from ..resources import FhirServerResource
from ..sync import use_server_profile
from ..warehouse.export_folder import deleted_types, land_deletions
from ..warehouse.files import folder_entries
from ..warehouse.landing import LandingOptions, LandingResult, land
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import Provenance, Warehouse, WarehouseOpener
from .tables import table_metadata

log = logging.getLogger(__name__)
EXPORTS = dg.DynamicPartitionsDefinition(name="fhir_bulk_export")
BULK_KEY = dg.AssetKey(["fhir_bulk", "export"])
BULK_JOB = "bulk_land"


class BulkExportResource(dg.ConfigurableResource):  # type: ignore[misc]
    """What to export and where its files go (FHIR_BULK_* variables)."""

    folder: str = Field(description="exports land in FOLDER/<partition> (FHIR_BULK_DIR)")
    level: str = Field(default="system", description="system | patient | group")
    group_id: str | None = Field(default=None, description="Group id (Epic, Oracle: required)")
    types: str = Field(
        default="",
        description="comma-separated _type (default: the catalog types the server's "
        "CapabilityStatement lists)",
    )
    lenient: bool = Field(
        default=False, description="Prefer: handling=lenient (skip what the server lacks)"
    )
    max_connections: int = Field(default=5, description="parallel downloads")
    max_wait_s: float = Field(default=300.0, description="cap on one Retry-After")
    total_timeout_s: float = Field(default=7 * 24 * 3600.0, description="give up after")

    def request(self, since: str | None, client: FhirClient | None = None) -> ExportRequest:
        """The export request, incremental from ``since`` (a previous ``transactionTime``).
        Without configured types, the catalog types ``client``'s server lists (a server refuses
        a kick-off naming a type it lacks), else the whole catalog."""
        types = [t.strip() for t in self.types.split(",") if t.strip()]
        if not types:
            types = listed_types(client) if client is not None else list(BY_TYPE)
        since = format_instant(since) if since else None
        return ExportRequest(self.level, self.group_id, tuple(types), since)

    def options(self) -> BulkOptions:
        return BulkOptions(
            max_connections=self.max_connections,
            max_wait_s=self.max_wait_s,
            total_timeout_s=self.total_timeout_s,
            lenient=self.lenient,
        )

    def folder_for(self, partition: str) -> Path:
        return Path(self.folder) / partition


def listed_types(client: FhirClient) -> list[str]:
    """The catalog types the server's CapabilityStatement lists; logs the ones it does not."""
    listed = server_types(client.capabilities())
    if not listed:  # a statement without rest.resource says nothing: ask for everything
        log.warning("the CapabilityStatement of %s lists no types; exporting the catalog",
                    redact(client.base_url))  # fmt: skip
        return list(BY_TYPE)
    missing = [t for t in BY_TYPE if t not in listed]
    if missing:
        log.warning(
            "%s does not list %s: not exported", redact(client.base_url), ", ".join(missing)
        )
    return [t for t in BY_TYPE if t in listed]


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
    warehouse: Warehouse,
    result: ExportResult,
    provenance: Provenance,
    options: LandingOptions,
    requested: Collection[str] = (),
) -> list[LandingResult]:
    """Land each type's output files, then each type's tombstones from the ``deleted`` files
    (after the resources, so a resource deleted in this export ends deleted).

    Every type (of an output file, or deleted by a Bundle) must be an R4 resource type the
    export asked for or the catalog holds; one that is not stops the landing before anything
    lands (``UnsafeNameError``, naming the value).
    """
    allowed = {*BY_TYPE, *requested}
    by_type: dict[str, list[Path]] = {}
    for resource_type, path in result.output_files():
        check_resource_type(resource_type, allowed, source="the export manifest")
        by_type.setdefault(resource_type, []).append(path)
    deleted = result.deleted_files()
    deleted_types(deleted, allowed)  # checked before anything lands
    results = [
        land(warehouse, t, folder_entries(paths, result.folder), provenance, options)
        for t, paths in sorted(by_type.items())
    ]
    results.extend(land_deletions(warehouse, deleted, result.folder, provenance, options, allowed))
    return results


COUNTS = ("seen", "landed", "updated", "deleted", "unchanged", "quarantined")


def raw_materializations(
    warehouse: Warehouse,
    landed: list[LandingResult],
    catalog: tuple[ResourceSpec, ...],
    server: str,
    source_counts: dict[str, int] | None,
) -> list[dg.AssetMaterialization]:
    """One materialization per raw asset of ``catalog`` the export landed, with the metadata a
    REST sync records (``source_count`` only for a full export: an incremental one does not
    say how many resources the server holds)."""
    by_type: dict[str, list[LandingResult]] = {}
    for result in landed:  # resources and tombstones of a type are two landings
        by_type.setdefault(result.resource_type, []).append(result)
    events = []
    for spec in catalog:
        results = by_type.get(spec.resource_type)
        if not results:
            continue
        metadata: dict[str, object] = {
            name: sum(getattr(r, name) for r in results) for name in COUNTS
        }
        metadata["source_server"] = server
        if source_counts is not None:
            metadata["source_count"] = source_counts.get(spec.resource_type, 0)
        metadata |= table_metadata(warehouse, RAW_SCHEMA, spec.table)
        key = dg.AssetKey([RAW_SCHEMA, spec.table])
        events.append(dg.AssetMaterialization(asset_key=key, metadata=metadata))  # type: ignore[arg-type]
    return events


def build_bulk_asset(
    options: LandingOptions | None = None,
    catalog: tuple[ResourceSpec, ...] = (),
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """The partitioned asset ``["fhir_bulk", "export"]``: download one export, land it, and
    record a materialization of each raw asset of ``catalog`` it landed. ``pool``: the FHIR
    server's (``fhir:<host>``)."""

    @dg.asset(
        key=BULK_KEY,
        partitions_def=EXPORTS,
        group_name="fhir_bulk",
        kinds={"fhir"},
        description="One Bulk Data $export per partition, landed into the fhir_raw tables.",
        pool=pool,
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
            # a resumed export keeps its request: only a new one asks the server for its types
            resumed = ExportState.load(folder).request is not None
            request = bulk.request(config.since or None, None if resumed else client)
            request = seed_state(folder, request, config)
            with BulkClient(client, bulk_options) as exporter:
                result = run_export(exporter, request, folder, log)
        moment = result.manifest.transaction_time
        server = redact(fhir.base_url)
        provenance = Provenance(
            server, context.partition_key, datetime.now(UTC), datetime.fromisoformat(moment)
        )
        full = request.since is None
        with landing.open_warehouse() as warehouse:
            landed = land_export(
                warehouse, result, provenance, options or LandingOptions(), request.types
            )
            events = raw_materializations(
                warehouse, landed, catalog, server, result.counts() if full else None
            )
        for event in events:
            context.log_event(event)
        for issue in result.fatal:
            context.log.warning("export error file: %s", issue)
        return dg.MaterializeResult(
            metadata={
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
            }
        )

    return bulk_export


def build_bulk_job():  # type: ignore[no-untyped-def]
    """``bulk_land``: materialize one export partition (run by the sensor or by hand)."""
    return dg.define_asset_job(BULK_JOB, selection=[BULK_KEY])  # partitions from the asset
