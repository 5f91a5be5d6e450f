"""A FHIR Provenance per write-back transaction: what was written, when, by which run.

It rides in the same transaction as the resources it describes, so it exists exactly when they
were written: a transaction that is rolled back or never arrives leaves no Provenance, and a
transaction whose answer was lost is recognised on re-read and not sent again (R4 Provenance has
no identifier to make it conditional).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..fhir.write import BundleEntry

AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACTIVITY = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def provenance_entry(
    entries: Sequence[BundleEntry], recorded: datetime, run_id: str, transaction_id: str
) -> BundleEntry:
    """A Provenance create entry targeting every resource the other entries write.

    Creates are targeted through their ``urn:uuid`` full URLs (the server resolves them to the
    new ids); updates through ``Type/id``.
    """
    targets = [
        {"reference": entry.full_url if entry.method == "POST" else entry.url.split("?")[0]}
        for entry in entries
        if entry.method in ("POST", "PUT") and (entry.full_url or "/" in entry.url)
    ]
    provenance = {
        "resourceType": "Provenance",
        "target": targets,
        "recorded": recorded.isoformat(timespec="milliseconds"),
        "activity": {
            "coding": [{"system": ACTIVITY, "code": "UPDATE"}],
            "text": f"fhir-assets write-back run {run_id}, transaction {transaction_id}",
        },
        "agent": [
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "assembler"}]},
                "who": {"display": "fhir-assets write-back"},
            }
        ],
    }
    return BundleEntry.create(provenance)
