"""One raw asset per catalog entry: search the FHIR server, land every resource of the type."""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from ..catalog import ResourceSpec
from ..fhir.client import redact
from ..resources import FhirServerResource
from ..warehouse.layout import RAW_SCHEMA, raw_frame, raw_row

GROUP = "fhir_raw"


def build_raw_asset(spec: ResourceSpec) -> dg.AssetsDefinition:
    """The raw asset ``["fhir_raw", "<type lower>"]`` for one resource type."""

    @dg.asset(
        name=spec.table,
        key_prefix=[RAW_SCHEMA],
        group_name=GROUP,
        io_manager_key="warehouse",
        kinds={"fhir"},
        description=f"Every FHIR {spec.resource_type} on the server, one row per resource "
        f"(raw JSON plus id, version and lastUpdated).",
        tags={"fhir/resource_type": spec.resource_type},
    )
    def raw_asset(context: AssetExecutionContext, fhir: FhirServerResource) -> pd.DataFrame:
        started = time.monotonic()
        ingested_at = datetime.now(UTC)
        pages = 0
        rows = []
        fhir.require_read(spec.resource_type)  # granted scopes checked before any data is pulled
        with fhir.get_client() as client:
            for page in client.search_pages(spec.resource_type, {"_count": fhir.page_size}):
                pages += 1
                rows.extend(
                    raw_row(
                        r,
                        source_server=fhir.base_url,
                        sync_id=context.run.run_id,
                        ingested_at=ingested_at,
                    )
                    for r in page.resources
                )
        frame = raw_frame(rows)
        seconds = time.monotonic() - started
        context.add_output_metadata(
            {
                "resources": len(frame),
                "pages": pages,
                "server": redact(fhir.base_url),
                "duration_s": round(seconds, 3),
                "resources_per_s": round(len(frame) / seconds, 1) if seconds else 0.0,
            }
        )
        return frame

    return raw_asset


def build_raw_assets(catalog: tuple[ResourceSpec, ...]) -> list[dg.AssetsDefinition]:
    """Raw assets for every catalog entry."""
    return [build_raw_asset(spec) for spec in catalog]
