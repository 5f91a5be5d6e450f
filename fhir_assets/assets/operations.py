"""Thin Dagster wiring of the FHIR operations (docs/operations.md): the ``$everything`` cohort
asset, the ``server_validate`` check of every raw table, and the ``$extract`` asset.

The work is done by ``cohort.py``, ``conformance.py`` and ``extraction.py`` (shared with the
CLI). Each step talks to the FHIR server, so it runs in the server's pool.
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ..catalog import ResourceSpec
from ..cohort import (
    Cohort,
    everything_metadata,
    fetch_everything,
    land_everything,
    parse_types,
)
from ..conformance import sample, validate_sample
from ..extraction import EXTRACT_SOURCE, extract_all, extraction_metadata, land_extraction, pending
from ..fhir.client import FhirClient, redact
from ..fhir.errors import FhirError
from ..fhir.operations import OperationLimits
from ..resources import FhirServerResource
from ..settings import OperationSettings
from ..sync import use_server_profile
from ..warehouse.landing import LandingOptions
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.protocol import Provenance, WarehouseOpener

GROUP = "fhir_operations"
COHORTS = dg.DynamicPartitionsDefinition(name="fhir_cohorts")
EVERYTHING_KEY = dg.AssetKey([GROUP, "everything"])
EXTRACT_KEY = dg.AssetKey([GROUP, "questionnaireresponse_extract"])


class EverythingConfig(dg.Config):  # type: ignore[misc]
    """Optional ``_since`` and ``_type`` of the ``$everything`` calls."""

    since: str | None = None
    types: str | None = None


def build_everything_asset(
    limits: OperationLimits, options: LandingOptions | None = None, pool: str | None = None
) -> dg.AssetsDefinition:
    """``fhir_operations/everything``, one dynamic partition per cohort (``Patient/a,b`` or
    ``Group/g``): every patient's ``$everything`` landed into ``fhir_raw.<type>``."""

    @dg.asset(
        key=EVERYTHING_KEY,
        group_name=GROUP,
        partitions_def=COHORTS,
        kinds={"fhir"},
        pool=pool,
        description="Patient/$everything for each patient of the cohort (the partition key: "
        "Patient/<id>[,<id>...] or Group/<id>), landed into the raw tables.",
    )
    def everything(
        context: dg.AssetExecutionContext,
        config: EverythingConfig,
        fhir: FhirServerResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> dg.MaterializeResult:
        cohort = Cohort.from_key(context.partition_key)
        types = parse_types(config.types)
        with (
            tempfile.TemporaryDirectory(prefix="fhir-everything-") as folder,
            fhir.get_client() as client,
        ):
            profile = use_server_profile(client, fhir)  # vendor headers, shared rate limit
            workers = fhir.workers or profile.workers
            ids = cohort.patients(client)
            fetched = fetch_everything(client, ids, Path(folder), since=config.since, types=types,
                                       limits=limits, workers=workers)  # fmt: skip
            provenance = Provenance(redact(fhir.base_url), context.run.run_id, datetime.now(UTC))
            with landing.open_warehouse() as warehouse:
                results = land_everything(warehouse, fetched, provenance, options)
        metadata = everything_metadata(fetched, results)
        return dg.MaterializeResult(metadata={"cohort": cohort.key, **_json(metadata)})

    return everything


def build_extract_asset(
    limits: OperationLimits, options: LandingOptions | None = None, pool: str | None = None
) -> dg.AssetsDefinition:
    """``fhir_operations/questionnaireresponse_extract``: ``$extract`` of every new or changed
    landed QuestionnaireResponse, the results landed into their raw tables."""

    @dg.asset(
        key=EXTRACT_KEY,
        group_name=GROUP,
        deps=[dg.AssetKey([RAW_SCHEMA, "questionnaireresponse"])],
        kinds={"fhir"},
        pool=pool,
        description="QuestionnaireResponse/$extract (SDC) of every new or changed response; "
        "the extracted resources land in their raw tables, tagged with their response.",
    )
    def questionnaireresponse_extract(
        context: dg.AssetExecutionContext,
        fhir: FhirServerResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> dg.MaterializeResult:
        server = redact(fhir.base_url)
        provenance = Provenance(server + EXTRACT_SOURCE, context.run.run_id, datetime.now(UTC))
        with landing.open_warehouse(landing=False) as warehouse:
            responses = pending(warehouse, server)
        with (
            tempfile.TemporaryDirectory(prefix="fhir-extract-") as folder,
            fhir.get_client() as client,
        ):
            use_server_profile(client, fhir)
            run = extract_all(client, responses, Path(folder), limits)
            with landing.open_warehouse() as warehouse:
                results = land_extraction(warehouse, run, responses, provenance, options)
        for response_id in sorted(run.failed):
            context.log.warning(
                f"QuestionnaireResponse/{response_id}: not extracted (earlier results kept)"
            )
        for response_id, count in sorted(run.stale.per_response.items()):
            gone = " (deleted on the server)" if response_id in run.stale.deleted_responses else ""
            context.log.info(f"QuestionnaireResponse/{response_id}{gone}: {count} earlier "
                             "results tombstoned")  # fmt: skip
        return dg.MaterializeResult(metadata=_json(extraction_metadata(run, results)))

    return questionnaireresponse_extract


def build_validate_checks(
    catalog: tuple[ResourceSpec, ...], size: int, profile: str | None, pool: str | None = None
) -> list[dg.AssetChecksDefinition]:
    """(warn) ``server_validate`` on every raw table: ``$validate`` of its ``size`` newest
    resources; fails when the server finds an error-level issue. None when ``size`` is 0."""
    if size <= 0 or not catalog:
        return []
    keys = {dg.AssetKey([RAW_SCHEMA, spec.table]): spec for spec in catalog}
    specs = [dg.AssetCheckSpec("server_validate", asset=key) for key in keys]

    @dg.multi_asset_check(specs=specs, name="raw_server_validate", can_subset=True, pool=pool)
    def server_validate(
        context: dg.AssetCheckExecutionContext,
        fhir: FhirServerResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> Iterator[dg.AssetCheckResult]:
        server = redact(fhir.base_url)
        selected = sorted(context.selected_asset_check_keys, key=str)
        with landing.open_warehouse(landing=False) as warehouse:
            samples = {k: list(sample(warehouse, keys[k.asset_key].table, server, size))
                       for k in selected}  # fmt: skip
        with fhir.get_client() as client:
            use_server_profile(client, fhir)
            for check_key, resources in samples.items():
                yield validate_result(client, keys[check_key.asset_key], resources, profile)

    return [server_validate]


def validate_result(
    client: FhirClient, spec: ResourceSpec, resources: list[dict[str, Any]], profile: str | None
) -> dg.AssetCheckResult:
    """The ``server_validate`` result of one table; a server that cannot validate (no
    ``$validate``, refused, down) fails the check with its answer, not the step."""
    key = dg.AssetKey([RAW_SCHEMA, spec.table])
    try:
        summary = validate_sample(client, spec.resource_type, resources, profile)
    except FhirError as exc:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name="server_validate",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not validated: {str(exc).splitlines()[0][:300]}",
            metadata={"sampled": len(resources), "validated": False},
        )
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="server_validate",
        passed=summary.errors == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=summary.metadata(),
    )


@dataclass(frozen=True, slots=True)
class OperationDefs:
    """The operation assets and checks ``build_defs`` adds."""

    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]


def build_operation_defs(
    settings: OperationSettings,
    catalog: tuple[ResourceSpec, ...],
    options: LandingOptions | None = None,
    pool: str | None = None,
) -> OperationDefs:
    """The ``$everything`` and ``$extract`` assets and the ``$validate`` checks for ``settings``
    (``FHIR_VALIDATE_*``, ``FHIR_OPERATION_*``)."""
    limits = OperationLimits(max_pages=settings.max_pages, deadline_s=settings.deadline_s)
    assets = [build_everything_asset(limits, options, pool)]
    if any(spec.resource_type == "QuestionnaireResponse" for spec in catalog):  # its input
        assets.append(build_extract_asset(limits, options, pool))
    return OperationDefs(
        assets=assets,
        checks=build_validate_checks(
            catalog, settings.validate_sample, settings.validate_profile, pool
        ),
    )


def _json(metadata: dict[str, object]) -> dict[str, object]:
    """Nested counts as JSON metadata values (Dagster takes only flat values as they are)."""
    return {k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in metadata.items()}
