"""Settling write attempts whose answer never arrived (``audit.SENDING`` rows left by a process
killed between sending a transaction and recording its result).

A transaction is all or nothing, so each entry either committed or did not. The server is asked
by the entry's business identifier: a resource whose content hashes as the request did means
the write committed (``committed``); anything else means it did not (``not-committed``; the next
write of that identifier plans from what the server holds). An entry without an identifier (the
Provenance of a transaction) cannot be looked up and is settled as ``unknown``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..fhir.client import FhirClient, redact
from .audit import AuditRecord, AuditWriter, request_hash
from .lookup import find_by_identifier

log = logging.getLogger(__name__)
NOTE = "settled on a later run: the answer to this attempt never arrived"


def reconcile(
    client: FhirClient, audit: AuditWriter, run_id: str, now: Callable[[], datetime]
) -> list[AuditRecord]:
    """Settle the unsettled attempts on ``client``'s server; returns the records added."""
    pending = audit.unsettled(redact(client.base_url))
    if not pending:
        return []
    log.warning(
        "%d write attempts of an earlier run got no answer: asking the server", len(pending)
    )
    settled = [_settle(client, attempt, run_id, now()) for attempt in pending]
    audit.record(settled)
    return settled


def _settle(client: FhirClient, attempt: AuditRecord, run_id: str, at: datetime) -> AuditRecord:
    record = replace(attempt, recorded_at=at, run_id=run_id, outcome_text=NOTE)
    if not attempt.identifier:
        return replace(record, outcome="unknown")
    system = attempt.identifier.split("|", 1)[0]
    found = find_by_identifier(client, system, [(attempt.resource_type, attempt.identifier)])
    for resource in found.get(attempt.identifier, []):
        if attempt.request_hash in _hashes(resource):
            version = (resource.get("meta") or {}).get("versionId")
            return replace(record, outcome="committed", resource_id=resource.get("id"),
                           version_id=version)  # fmt: skip
    return replace(record, outcome="not-committed")


def _hashes(resource: dict[str, Any]) -> set[str]:
    """The request hashes the server's resource matches: as sent (without id and meta), and
    without a narrative the server may have generated."""
    sent = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return {request_hash(sent), request_hash({k: v for k, v in sent.items() if k != "text"})}
