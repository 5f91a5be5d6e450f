"""``Patient/$everything`` for a cohort: fetch every patient's record, land it by type.

Shared by the ``fhir_cohort/everything`` asset and ``fhir-assets everything`` (no Dagster here).
Patients are fetched in parallel by the server profile's workers through the one client (its
rate limit and retries), spooled to local files per type, then landed through the one landing
path (``warehouse.landing.land``: MERGE, quarantine and tombstone rules unchanged).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .assets.spool import Spool  # pure: NDJSON files, no Dagster
from .fhir.client import FhirClient
from .fhir.errors import ConfigurationError, RequestError
from .fhir.names import check_resource_type, is_resource_type
from .fhir.operations import OperationLimits, everything_pages
from .fhir.parallel import run_parallel
from .fhir.profiles import group_patient_ids
from .warehouse.landing import LandingOptions, LandingResult, land
from .warehouse.protocol import Provenance, Warehouse

# Not an R4 type name (it would become a table and folder name): landed as a Patient, which
# quarantines it with the reason (fhir/names.py), never dropped.
QUARANTINED = "Patient"
MAX_PATIENTS = 10_000  # one cohort run; larger cohorts belong to Bulk Data (docs/operations.md)


@dataclass(frozen=True, slots=True)
class Cohort:
    """Patients named by id, or the members of a Group. Partition key: ``Patient/a,b`` or
    ``Group/g``."""

    patient_ids: tuple[str, ...] = ()
    group_id: str | None = None

    def __post_init__(self) -> None:
        if bool(self.patient_ids) == bool(self.group_id):
            raise ConfigurationError("a cohort is either patient ids or one Group id")

    @classmethod
    def from_key(cls, key: str) -> Cohort:
        """The cohort a partition key names."""
        kind, _, rest = key.partition("/")
        if kind == "Group" and rest:
            return cls(group_id=rest)
        ids = tuple(i.strip() for i in rest.split(",") if i.strip())
        if kind != "Patient" or not ids:
            raise ConfigurationError(
                f"cohort key {key!r}: use Patient/<id>[,<id>...] or Group/<id>"
            )
        return cls(patient_ids=ids)

    @property
    def key(self) -> str:
        return (
            f"Group/{self.group_id}" if self.group_id else "Patient/" + ",".join(self.patient_ids)
        )

    def patients(self, client: FhirClient) -> list[str]:
        """The patient ids, read from the Group's members for a Group (bounded)."""
        try:
            ids = list(self.patient_ids) or group_patient_ids(client, str(self.group_id))
        except RequestError as exc:
            if exc.status != 404:
                raise
            raise ConfigurationError(f"Group/{self.group_id} is not on the server ({exc})") from exc
        if len(ids) > MAX_PATIENTS:
            raise ConfigurationError(
                f"{self.key} has {len(ids)} patients, more than {MAX_PATIENTS}: "
                "use a Bulk Data group export (`fhir-assets export --level group`)"
            )
        return list(dict.fromkeys(ids))


@dataclass(slots=True)
class Fetched:
    """What a cohort's ``$everything`` calls returned, spooled per type."""

    folder: Path
    spools: dict[str, Spool] = field(default_factory=dict)
    per_patient: dict[str, dict[str, int]] = field(default_factory=dict)
    other_types: int = 0

    def add(self, patient_id: str, page: list[dict[str, Any]], types: Sequence[str]) -> None:
        counts = Counter(type_of(r) for r in page)
        by_type: dict[str, list[dict[str, Any]]] = {}
        for resource in page:
            rtype = type_of(resource)
            named = isinstance(resource, dict) and resource.get("resourceType") == rtype
            if types and named and rtype not in types:  # unnamed ones go to the quarantine
                self.other_types += 1  # the server ignored _type: not asked for, counted
                continue
            by_type.setdefault(rtype, []).append(resource)
        mine = self.per_patient.setdefault(patient_id, {})
        for rtype, count in counts.items():
            mine[rtype] = mine.get(rtype, 0) + count
        for rtype, resources in by_type.items():
            if rtype not in self.spools:
                (self.folder / rtype).mkdir()
                self.spools[rtype] = Spool(self.folder / rtype)
            source = f"Patient/{patient_id}/$everything"
            self.spools[rtype].write(source, resources)


def parse_types(text: str | None) -> tuple[str, ...]:
    """Comma-separated R4 type names (``--type``, the asset's ``types``), each checked.

    Raises:
        UnsafeNameError: a name that is no R4 resource type.
    """
    names = (name.strip() for name in (text or "").split(","))
    return tuple(check_resource_type(name, source="--type") for name in names if name)


def type_of(resource: Any) -> str:
    """The resource's type when it is an R4 type name, else :data:`QUARANTINED`."""
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    return rtype if is_resource_type(rtype) else QUARANTINED


def fetch_everything(
    client: FhirClient,
    patient_ids: Sequence[str],
    folder: Path,
    *,
    since: str | None = None,
    types: Sequence[str] = (),
    limits: OperationLimits | None = None,
    workers: int = 1,
) -> Fetched:
    """Call ``Patient/{id}/$everything`` for every patient (``workers`` at a time), spooling
    every page under ``folder``. The first failure stops the run (nothing is landed)."""
    fetched = Fetched(folder)

    def one(patient_id: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for page in everything_pages(client, patient_id, since=since, types=types, limits=limits):
            yield patient_id, page

    tasks = [partial(one, pid) for pid in patient_ids]
    for patient_id, page in run_parallel(tasks, workers=workers):
        fetched.add(patient_id, page, types)
    return fetched


def land_everything(
    warehouse: Warehouse,
    fetched: Fetched,
    provenance: Provenance,
    options: LandingOptions | None = None,
) -> list[LandingResult]:
    """Land every spooled type into ``fhir_raw.<type>`` (one landing per type)."""
    return [
        land(warehouse, rtype, spool.entries(), provenance, options)
        for rtype, spool in sorted(fetched.spools.items())
    ]


def everything_metadata(fetched: Fetched, results: Sequence[LandingResult]) -> dict[str, Any]:
    """Counts for materialization metadata or the command's summary (ids and counts only)."""
    return {
        "patients": len(fetched.per_patient),
        "per_patient": fetched.per_patient,
        "per_type": {r.resource_type: r.metadata() for r in results},
        "resources": sum(r.seen for r in results),
        "landed": sum(r.landed for r in results),
        "updated": sum(r.updated for r in results),
        "unchanged": sum(r.unchanged for r in results),
        "quarantined": sum(r.quarantined for r in results),
        "other_types_skipped": fetched.other_types,
    }
