"""The one registry of FHIR server profiles: every vendor quirk the sync answers to, in one place.

A profile is picked by name (``FHIR_SERVER_PROFILE``) or detected from the server's
CapabilityStatement (``software.name``, ``publisher``); :data:`GENERIC` is the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .client import FhirClient
from .errors import ConfigurationError
from .ratelimit import RateLimit
from .window import Query, Window


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """How to search one kind of FHIR server.

    Attributes:
        name: registry key (``generic``, ``epic``, ``oracle``, ``hapi``, ``sekmet``).
        page_size: ``_count`` sent with searches.
        requests_per_s: default client-side rate limit, shared by all threads of a sync.
        workers: default number of windows (or patients) searched in parallel.
        last_updated_search: the server supports ``_lastUpdated`` on every type.
        split_threshold: a window whose ``Bundle.total`` exceeds this is split in two by time.
        min_window: windows are not split below this span (paged through as they are).
        max_restarts: how often a window is restarted after 410 Gone (expired cursor).
        join_repeated: repeated parameters are sent comma-joined (``_type=A,B``), not repeated.
        client_id_header: a header that carries the SMART client id on every request.
        required_params: per type, a parameter the server requires and the values to search
            one by one (one search per value).
        patient_date_params: per type, the clinical-date parameter to window per-patient searches
            by when ``_lastUpdated`` is unsupported; types absent here are fetched whole.
        software_names: lower-case ``software.name``/``publisher`` fragments that detect it.
        bulk_group_only: Bulk Data exports only at ``Group/{id}`` level (no system/patient).
        concurrent_syncs: default limit of the Dagster pool ``fhir:<host>``: steps searching
            the server at once, across all runs (each step is parallel inside: ``workers``).
        concurrent_exports: default limit of the pool ``fhir-bulk:<host>``: Bulk Data exports
            in flight at once (kick-off to the last download).
    """

    name: str
    page_size: int = 500
    requests_per_s: float = 20.0
    workers: int = 4
    last_updated_search: bool = True
    split_threshold: int | None = 50_000
    min_window: timedelta = timedelta(seconds=1)
    max_restarts: int = 3
    join_repeated: bool = False
    client_id_header: str | None = None
    required_params: Mapping[str, tuple[str, tuple[str, ...]]] = field(
        default_factory=lambda: _frozen({})
    )
    patient_date_params: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    software_names: tuple[str, ...] = ()
    bulk_group_only: bool = False
    # The rate limit spans the processes of one machine only (a SQLite file); the pool limit is
    # what bounds runs on different machines (Kubernetes pods), so both defaults stay small.
    concurrent_syncs: int = 2
    # The Bulk Data spec lets a server refuse a second export with 429; one at a time is safe.
    concurrent_exports: int = 1


GENERIC = ServerProfile(name="generic")

EPIC = ServerProfile(
    name="epic",
    # Epic pages are capped server-side (~1000) and large pages time out on the live database.
    page_size=100,
    # Epic throttles per client and shares the production database: stay well below its limits.
    requests_per_s=5.0,
    workers=2,
    # Epic has no _lastUpdated search parameter: patient-compartment types are searched per
    # patient (patient list from a Group or the Patient table) and windowed by clinical date.
    last_updated_search=False,
    split_threshold=None,
    # Epic routes and audits by client; its docs ask every call to name the client.
    client_id_header="Epic-Client-ID",
    required_params=_frozen(
        {
            # Epic rejects Observation searches without a category.
            "Observation": (
                "category",
                ("laboratory", "vital-signs", "social-history", "survey", "exam", "imaging"),
            ),
            # Epic rejects EpisodeOfCare searches without a type; the codes are site-specific,
            # so a site lists them with ``replace(profile, required_params=...)``.
            "EpisodeOfCare": ("type", ()),
        }
    ),
    # The date parameters Epic's R4 search supports on the per-patient types.
    patient_date_params=_frozen(
        {
            "Observation": "date",
            "Encounter": "date",
            "DiagnosticReport": "date",
            "Procedure": "date",
            "Immunization": "date",
            "DocumentReference": "date",
        }
    ),
    software_names=("epic",),
    # Epic's Bulk Data export is Group-level only (a Group registered for the client).
    bulk_group_only=True,
    # Epic throttles per client, not per process: one sync step at a time keeps a deployment
    # whose run pods each have their own rate limiter at the profile's 5 requests/s.
    concurrent_syncs=1,
    # Epic runs one export per client and Group at a time and refuses a second one.
    concurrent_exports=1,
)

ORACLE = ServerProfile(
    name="oracle",
    # Oracle Health (Cerner) Millennium caps _count around 200 on most types.
    page_size=200,
    requests_per_s=10.0,
    # Cerner rejects repeated parameters (``_type=A&_type=B``) and wants them comma-joined.
    join_repeated=True,
    software_names=("cerner", "oracle", "millennium"),
    # Oracle Health exports Group/{id} only (a bulk Group configured per client).
    bulk_group_only=True,
    # Oracle Health queues a client's exports and throttles per client: one at a time.
    concurrent_exports=1,
)

HAPI = ServerProfile(
    name="hapi",
    page_size=500,
    requests_per_s=50.0,
    # HAPI caps how deep offset paging goes (default max offset 1000 x page); a window holding
    # more is split by time instead of being paged past the cap.
    split_threshold=10_000,
    software_names=("hapi",),
    # Self-hosted, with a large rate budget: more parallel steps pay off.
    concurrent_syncs=4,
)

SEKMET = ServerProfile(
    name="sekmet",
    # One SQLite connection behind it: parallel requests queue, so a few workers are enough.
    page_size=500,
    requests_per_s=200.0,
    workers=2,
    # Offset paging (``_offset=N``) drifts when the window changes during a pull; windows end
    # before "now" so only updates/deletes can move rows, and the sync re-pages on a changed total.
    split_threshold=20_000,
    software_names=("sekmet",),
    # One SQLite connection serves every request: more parallel steps only queue at the server.
    concurrent_syncs=2,
)

PROFILES: Mapping[str, ServerProfile] = _frozen(
    {p.name: p for p in (GENERIC, EPIC, ORACLE, HAPI, SEKMET)} | {"cerner": ORACLE}
)


def get_profile(name: str) -> ServerProfile:
    """The registered profile called ``name`` (case-insensitive).

    Raises:
        ConfigurationError: no such profile.
    """
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ConfigurationError(
            f"unknown FHIR server profile {name!r}: use one of {', '.join(sorted(PROFILES))}"
        ) from None


def detect_profile(capabilities: Mapping[str, Any]) -> ServerProfile:
    """The profile matching a CapabilityStatement's ``software.name`` or ``publisher``.

    Returns:
        the first profile whose name fragment appears, else :data:`GENERIC`.
    """
    software = capabilities.get("software")
    text = " ".join(
        str(value)
        for value in (
            software.get("name") if isinstance(software, Mapping) else None,
            capabilities.get("publisher"),
            (capabilities.get("implementation") or {}).get("description"),
        )
        if value
    ).lower()
    for profile in (EPIC, ORACLE, HAPI, SEKMET):
        if any(fragment in text for fragment in profile.software_names):
            return profile
    return GENERIC


def build_queries(
    profile: ServerProfile,
    resource_type: str,
    window: Window | None,
    *,
    patient_compartment: bool = True,
    patient_ids: Iterable[str] = (),
) -> list[Query]:
    """The searches that fetch ``resource_type`` changed in ``window`` from a ``profile`` server.

    Raises:
        ConfigurationError: the server needs a per-patient search but no patients were given, or a
            required parameter has no configured values.
    """
    variants = _required_variants(profile, resource_type)
    if profile.last_updated_search:
        return [Query(resource_type, v, window) for v in variants]
    if not patient_compartment:
        # Without _lastUpdated a non-compartment type can only be fetched whole.
        return [Query(resource_type, v) for v in variants]
    date_param = profile.patient_date_params.get(resource_type)
    ids = list(patient_ids)
    if not ids:
        raise ConfigurationError(
            f"{profile.name} cannot search {resource_type} by _lastUpdated: configure a patient "
            f"Group (FHIR_PATIENT_GROUP) so it is searched per patient"
        )
    return [
        Query(
            resource_type, (("patient", pid), *v), window if date_param else None, date_param or ""
        )
        for pid in ids
        for v in variants
    ]


def _required_variants(
    profile: ServerProfile, resource_type: str
) -> list[tuple[tuple[str, str], ...]]:
    if resource_type not in profile.required_params:
        return [()]
    name, values = profile.required_params[resource_type]
    if not values:
        raise ConfigurationError(
            f"{profile.name} requires {resource_type} searches to name a {name!r}: list the codes "
            f"in the profile's required_params"
        )
    if profile.join_repeated:
        return [((name, ",".join(values)),)]
    return [((name, value),) for value in values]


def resolve_profile(client: FhirClient, name: str | None = None) -> ServerProfile:
    """The profile called ``name``, or the one the server's CapabilityStatement names."""
    return get_profile(name) if name else detect_profile(client.capabilities())


def apply_profile(
    client: FhirClient,
    profile: ServerProfile,
    *,
    client_id: str | None = None,
    requests_per_s: float | None = None,
    shared_file: Path | None = None,
) -> None:
    """Send the profile's headers and rate-limit the client.

    The limit is shared by all threads using the client and, with ``shared_file``, by every
    process that names the same file (:func:`~fhir_assets.fhir.ratelimit.shared_rate_file`).
    """
    if profile.client_id_header and client_id:
        client.session.headers[profile.client_id_header] = client_id
    rate = requests_per_s or profile.requests_per_s
    client.use_rate_limit(RateLimit(rate, shared_file=shared_file))


def group_patient_ids(client: FhirClient, group_id: str) -> list[str]:
    """The ids of the patients in ``Group/{group_id}`` (``Group.member.entity``)."""
    group = client.get(f"Group/{group_id}")
    refs = (str((m.get("entity") or {}).get("reference", "")) for m in group.get("member") or ())
    return [ref.split("/", 1)[1] for ref in refs if ref.startswith("Patient/")]
