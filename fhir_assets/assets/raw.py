"""One raw asset per catalog entry: search the FHIR server, land every resource of the type."""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
from dagster import AssetExecutionContext

from ..catalog import ResourceSpec
from ..fhir.client import redact
from ..resources import FhirServerResource
from ..warehouse.batches import Entry
from ..warehouse.landing import LandingOptions, land, resource_entries
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import Provenance, WarehouseOpener

GROUP = "fhir_raw"


def build_raw_asset(
    spec: ResourceSpec, options: LandingOptions | None = None
) -> dg.AssetsDefinition:
    """The raw asset ``["fhir_raw", "<type lower>"]`` for one resource type.

    It lands through ``warehouse.landing.land`` with the ``landing`` resource (validated,
    merged, quarantined) rather than returning a DataFrame to an IO manager: dagster-duckdb's
    and dagster-snowflake's ``DbIOManager`` empty the table before writing, which defeats
    MERGE, and it needs the whole output in memory.
    """

    @dg.asset(
        name=spec.table,
        key_prefix=[RAW_SCHEMA],
        group_name=GROUP,
        kinds={"fhir"},
        description=f"Every FHIR {spec.resource_type} on the server, one row per resource "
        f"(raw JSON plus id, version and lastUpdated).",
        tags={"fhir/resource_type": spec.resource_type},
    )
    def raw_asset(
        context: AssetExecutionContext,
        fhir: FhirServerResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        server = redact(fhir.base_url)
        pages = 0
        totals: list[int | None] = []

        def entries() -> Iterator[Entry]:
            nonlocal pages
            with fhir.get_client() as client:
                for page in client.search_pages(spec.resource_type, {"_count": fhir.page_size}):
                    pages += 1
                    totals.append(page.total)
                    source = f"{server}/{spec.resource_type} search page {pages}"
                    yield from resource_entries(source, page.resources)

        provenance = Provenance(server, context.run.run_id, datetime.now(UTC))
        with landing.open_warehouse() as warehouse:
            result = land(warehouse, spec.resource_type, entries(), provenance, options)
        seconds = time.monotonic() - started
        # What the source holds: the search total (Bundle.total) when the server sent one.
        source_count = totals[0] if totals and totals[0] is not None else result.seen
        return dg.MaterializeResult(
            metadata={
                "resources": result.seen,
                "source_count": source_count,
                "source_server": server,
                **result.metadata(),
                "pages": pages,
                "server": server,
                "duration_s": round(seconds, 3),
                "resources_per_s": round(result.seen / seconds, 1) if seconds else 0.0,
            }
        )

    return raw_asset


def build_raw_assets(
    catalog: tuple[ResourceSpec, ...], options: LandingOptions | None = None
) -> list[dg.AssetsDefinition]:
    """Raw assets for every catalog entry."""
    return [build_raw_asset(spec, options) for spec in catalog]
