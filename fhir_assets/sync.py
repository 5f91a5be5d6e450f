"""Turn the FHIR server resource and a catalog entry into a windowed sync (no Dagster here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .catalog import ResourceSpec
from .fhir.client import FhirClient
from .fhir.profiles import (
    ServerProfile,
    apply_profile,
    build_queries,
    group_patient_ids,
    resolve_profile,
)
from .fhir.ratelimit import RateLimit, shared_rate_file
from .fhir.ratelimit_postgres import shared_rate_table
from .fhir.search import WindowSync
from .fhir.window import Query, Window

if TYPE_CHECKING:  # the Dagster resource; `fhir-assets sync` passes a plain object instead
    from .resources import FhirServerResource


def use_server_profile(client: FhirClient, fhir: FhirServerResource) -> ServerProfile:
    """The server's profile: the one ``fhir_assets.fhir.build_client`` applied when it built
    ``client`` (every path builds it so). A client built by hand (tests, the sandbox) gets it
    resolved and applied here (vendor headers, rate limit shared through a file or, with
    ``rate_limit_postgres``, a table)."""
    if client.profile is not None:
        return client.profile
    profile = resolve_profile(client, fhir.server_profile)
    dsn = fhir.rate_limit_postgres
    apply_profile(
        client,
        profile,
        client_id=fhir.client_id,
        requests_per_s=fhir.requests_per_s,
        shared_file=None if dsn else shared_rate_file(fhir.base_url),
    )
    if dsn and client.rate_limit is not None:
        # the same rate apply_profile chose (the resource's, else the profile's), shared wider
        table = shared_rate_table(fhir.base_url, dsn)
        client.use_rate_limit(RateLimit(client.rate_limit.requests_per_s, postgres=table))
    client.profile = profile
    return profile


def build_window_sync(client: FhirClient, fhir: FhirServerResource) -> WindowSync:
    """A :class:`WindowSync` for the resource's server: profile resolved, headers and rate set.

    The resource's ``page_size`` caps the profile's (Epic wants 100, the resource default is 500).
    """
    profile = use_server_profile(client, fhir)
    profile = replace(profile, page_size=min(profile.page_size, fhir.page_size))
    return WindowSync(client, profile, workers=fhir.workers)


def build_sync_queries(
    sync: WindowSync, fhir: FhirServerResource, spec: ResourceSpec, windows: Sequence[Window]
) -> list[Query]:
    """The searches covering ``windows`` for one catalog entry on this server."""
    patient_ids: list[str] = []
    if not sync.profile.last_updated_search and spec.patient_compartment and fhir.patient_group:
        patient_ids = group_patient_ids(sync.client, fhir.patient_group)
    return [
        query
        for window in windows
        for query in build_queries(
            sync.profile,
            spec.resource_type,
            window,
            patient_compartment=spec.patient_compartment,
            patient_ids=patient_ids,
        )
    ]
