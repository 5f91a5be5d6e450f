"""``QuestionnaireResponse/$extract`` for every new or changed landed response (SDC).

Shared by the ``fhir_operations/questionnaireresponse_extract`` asset and ``fhir-assets extract``
(no Dagster). Each response landed in ``fhir_raw.questionnaireresponse`` whose version has no row
in ``fhir_raw._extract_log`` yet (or, with ``since``, every one updated since then) is sent to
the server's ``$extract``; what comes back is landed through the one landing path into its own
raw table with:

* ``source_server`` = the server's base URL + ``#extract`` (derived rows, kept apart from the
  server's stored resources and their checks);
* ``meta.tag`` ``{system: EXTRACTED_FROM, code: "QuestionnaireResponse/<id>"}``;
* an ``id`` the server did not give: ``<response id>-<n>`` (stable, so re-extraction merges), and
  the response's ``meta.lastUpdated``/``versionId`` (a changed response's extraction wins).

A response the server cannot extract gets a log row with its OperationOutcome (masked, cut
short), its earlier results are kept, and the run goes on. Earlier results that a successful
re-extraction no longer gives, and results of responses deleted on the server, are tombstoned
(``extraction_tombstones.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .assets.spool import Spool  # pure: NDJSON files, no Dagster
from .cohort import type_of
from .extraction_tombstones import Extracted, Stale, tombstone_stale
from .fhir.client import FhirClient
from .fhir.errors import RequestError
from .fhir.operations import OperationLimits, OperationNotSupportedError, extract, issue_of_text
from .warehouse import sql
from .warehouse.landing import LandingOptions, LandingResult, land
from .warehouse.layout import RAW_SCHEMA
from .warehouse.protocol import Provenance, Warehouse

EXTRACTED_FROM = "https://fhir-assets.dev/CodeSystem/extracted-from"
# no "$" in it: the Snowflake emulator (fakesnow) reads '$name' inside a string literal as a
# session variable and fails
EXTRACT_SOURCE = "#extract"
LOG_TABLE = "_extract_log"
KEPT = "earlier results kept"  # a failed extraction tombstones nothing
SOURCE_TABLE = "questionnaireresponse"


@dataclass(frozen=True, slots=True)
class Pending:
    """A landed response version to extract."""

    id: str
    version_id: str | None
    last_updated: str | None

    @property
    def version(self) -> str:
        return f"{self.version_id or ''}|{self.last_updated or ''}"


@dataclass(slots=True)
class Extraction:
    """What ``$extract`` returned for a run's responses, spooled per type."""

    folder: Path
    spools: dict[str, Spool] = field(default_factory=dict)
    per_response: dict[str, int] = field(default_factory=dict)
    results: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (type, id) each
    failed: dict[str, str] = field(default_factory=dict)
    left: int = 0
    stale: Stale = field(default_factory=Stale)  # set by ``land_extraction``


def pending(warehouse: Warehouse, server: str, since: datetime | None = None) -> list[Pending]:
    """Responses of ``server`` to extract: versions not in the log yet, or (with ``since``)
    every one updated since then."""
    if int(warehouse.fetch(sql.table_exists(SOURCE_TABLE))[0][0]) == 0:
        return []
    literal, dialect = warehouse.dialect.literal, warehouse.dialect
    where = f"NOT deleted AND source_server = {literal(server)}"
    if since is not None:
        where += f" AND last_updated >= {dialect.to_timestamp(literal(since.isoformat()))}"
    rows = warehouse.fetch(
        f"SELECT id, version_id, {sql.json_text(dialect, 'resource', 'meta.lastUpdated')} "  # noqa: S608
        f"FROM {sql.qualified(SOURCE_TABLE)} WHERE {where} ORDER BY id"
    )
    found = [Pending(str(i), v, u) for i, v, u in rows]
    if since is not None:
        return found
    done = extracted_versions(warehouse, server)
    return [p for p in found if (p.id, p.version) not in done]


def extracted_versions(warehouse: Warehouse, server: str) -> set[tuple[str, str]]:
    """(response id, version) pairs already in the log for ``server``."""
    if int(warehouse.fetch(sql.table_exists(LOG_TABLE))[0][0]) == 0:
        return set()
    rows = warehouse.fetch(
        f"SELECT response_id, response_version FROM {sql.qualified(LOG_TABLE)} "  # noqa: S608
        f"WHERE source_server = {warehouse.dialect.literal(server)}"
    )
    return {(str(i), str(v)) for i, v in rows}


def extract_all(
    client: FhirClient, responses: Sequence[Pending], folder: Path, limits: OperationLimits
) -> Extraction:
    """``$extract`` each response in turn, spooling the results by type under ``folder``.

    Stops early (the rest is left for the next run, counted in ``left``) at the deadline.

    Raises:
        OperationNotSupportedError: the server has no ``$extract`` (nothing can be extracted).
    """
    run = Extraction(folder)
    deadline = limits.clock() + limits.deadline_s
    for number, response in enumerate(responses):
        if limits.clock() > deadline:
            run.left = len(responses) - number
            break
        try:
            resources = extract(client, response.id)
        except OperationNotSupportedError:
            raise
        except RequestError as exc:
            issues = [issue_of_text(text) for text in exc.issues]
            shown = "; ".join(f"{i.severity} {i.message}" for i in issues)
            run.failed[response.id] = shown or f"HTTP {exc.status}"
            continue
        stamped = [stamp(r, response, n) for n, r in enumerate(resources, 1)]
        run.per_response[response.id] = len(stamped)
        run.results[response.id] = [
            (type_of(r), str(r["id"])) for r in stamped if isinstance(r, dict)
        ]
        spool_by_type(run, response.id, stamped)
    return run


def stamp(resource: Any, response: Pending, number: int) -> Any:
    """The resource with its source tag, a stable id and the response's version."""
    if not isinstance(resource, dict):
        return resource  # quarantined by the landing, with the reason
    resource = dict(resource)
    if not resource.get("id"):
        rid = f"{response.id}-{number}"
        resource["id"] = rid if len(rid) <= 64 else hashlib.sha256(rid.encode()).hexdigest()[:64]
    meta = dict(resource.get("meta") or {})
    tag = {"system": EXTRACTED_FROM, "code": f"QuestionnaireResponse/{response.id}"}
    meta["tag"] = [*(meta.get("tag") or []), tag]
    if response.last_updated:
        meta.setdefault("lastUpdated", response.last_updated)
    if response.version_id:
        meta.setdefault("versionId", response.version_id)
    resource["meta"] = meta
    return resource


def spool_by_type(run: Extraction, response_id: str, resources: list[Any]) -> None:
    by_type: dict[str, list[Any]] = {}
    for resource in resources:
        by_type.setdefault(type_of(resource), []).append(resource)
    for rtype, group in by_type.items():
        if rtype not in run.spools:
            (run.folder / rtype).mkdir()
            run.spools[rtype] = Spool(run.folder / rtype)
        run.spools[rtype].write(f"QuestionnaireResponse/{response_id}/$extract", group)


def land_extraction(
    warehouse: Warehouse,
    run: Extraction,
    responses: Sequence[Pending],
    provenance: Provenance,
    options: LandingOptions | None = None,
) -> list[LandingResult]:
    """Land the spooled resources (``provenance.source_server`` ends in ``EXTRACT_SOURCE``),
    tombstone the stale results (``run.stale``), then log every attempted response: extracted
    (with its count), failed (with its outcome) or deleted (with its results tombstoned). The
    log comes last: a run stopped before it extracts the same versions again."""
    results = [
        land(warehouse, rtype, spool.entries(), provenance, options)
        for rtype, spool in sorted(run.spools.items())
    ]
    server = provenance.source_server.removesuffix(EXTRACT_SOURCE)
    extracted = [
        Extracted(p.id, p.version_id, p.last_updated, run.results.get(p.id, ()))
        for p in responses
        if p.id in run.per_response
    ]
    run.stale = tombstone_stale(warehouse, extracted, provenance, options, server=server,
                                system=EXTRACTED_FROM)  # fmt: skip
    write_log(warehouse, server, run, responses, provenance.at)
    return results


def write_log(
    warehouse: Warehouse, server: str, run: Extraction, responses: Sequence[Pending], at: str
) -> None:
    literal = warehouse.dialect.literal
    warehouse.fetch(f"CREATE SCHEMA IF NOT EXISTS {sql.identifier(RAW_SCHEMA)}")
    warehouse.fetch(
        f"CREATE TABLE IF NOT EXISTS {sql.qualified(LOG_TABLE)} (source_server VARCHAR, "
        "response_id VARCHAR, response_version VARCHAR, extracted_at VARCHAR, "
        "resources INTEGER, outcome VARCHAR)"
    )
    rows = []
    for response in responses:
        if response.id not in run.per_response and response.id not in run.failed:
            continue  # left for the next run
        count = run.per_response.get(response.id, 0)
        failure = run.failed.get(response.id)
        outcome = literal(f"{failure} ({KEPT})") if failure else "NULL"
        rows.append(
            f"({literal(server)}, {literal(response.id)}, {literal(response.version)}, "
            f"{literal(at)}, {count}, {outcome})"
        )
    for response_id, version in sorted(run.stale.deleted_responses.items()):
        gone = f"deleted on the server: {run.stale.per_response[response_id]} results tombstoned"
        rows.append(f"({literal(server)}, {literal(response_id)}, {literal(version)}, "
                    f"{literal(at)}, 0, {literal(gone)})")  # fmt: skip
    for statement in sql.insert_values(sql.qualified(LOG_TABLE), rows):
        warehouse.fetch(statement)


def extraction_metadata(run: Extraction, results: Sequence[LandingResult]) -> dict[str, Any]:
    """Counts for materialization metadata or the command's summary."""
    return {
        "responses": len(run.per_response) + len(run.failed),
        "extracted_responses": len(run.per_response),
        "failed_responses": len(run.failed),
        "left_for_next_run": run.left,
        "per_response": run.per_response,
        "failures": run.failed,
        "per_type": {r.resource_type: r.metadata() for r in results},
        "resources": sum(r.seen for r in results),
        "quarantined": sum(r.quarantined for r in results),
        "tombstoned": run.stale.tombstoned,
        "tombstoned_per_type": {r.resource_type: r.deleted for r in run.stale.results},
        "stale_per_response": dict(sorted(run.stale.per_response.items())),
        "deleted_responses": len(run.stale.deleted_responses),
        "stale_left_for_next_run": run.stale.more_left,
    }
