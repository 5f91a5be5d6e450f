"""US Core types clinosim does not write, derived per patient so the sandbox holds some of every
type a sync is likely asked for beyond the 23 of the old catalog: a Goal, a CarePlan that
pursues it and a Provenance per patient, and a Device for every third patient (the
QuestionnaireResponses are ``questionnaires.py``'s, answers to a form ``$extract`` reads).
Deterministic: the same NDJSON in gives the same resources out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RECORDED = "2026-03-01T00:00:00Z"  # the end of the simulation window (seed.SIM_END)


def derive_us_core(ndjson: Path) -> dict[str, list[dict[str, Any]]]:
    """Type -> resources, from the patients and the first organization in ``ndjson``."""
    from .seed import read_ndjson

    patients = sorted(p["id"] for p in read_ndjson(ndjson / "Patient.ndjson"))
    organization = next(read_ndjson(ndjson / "Organization.ndjson"))["id"]
    out: dict[str, list[dict[str, Any]]] = {
        "Goal": [], "CarePlan": [], "Provenance": [], "Device": []
    }  # fmt: skip
    for n, pid in enumerate(patients):
        subject = {"reference": f"Patient/{pid}"}
        out["Goal"].append(goal(pid, subject))
        out["CarePlan"].append(care_plan(pid, subject))
        out["Provenance"].append(provenance(pid, organization))
        if n % 3 == 0:
            out["Device"].append(device(pid, subject))
    return out


def goal(pid: str, subject: dict[str, str]) -> dict[str, Any]:
    return {"resourceType": "Goal", "id": f"goal-{pid}", "lifecycleStatus": "active",
            "description": {"text": "Maintain a healthy weight"}, "subject": subject}  # fmt: skip


def care_plan(pid: str, subject: dict[str, str]) -> dict[str, Any]:
    category = {"system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                "code": "assess-plan"}  # fmt: skip
    div = '<div xmlns="http://www.w3.org/1999/xhtml">Assessment and plan of treatment</div>'
    return {"resourceType": "CarePlan", "id": f"careplan-{pid}", "status": "active",
            "intent": "plan", "category": [{"coding": [category]}], "subject": subject,
            "goal": [{"reference": f"Goal/goal-{pid}"}],
            "text": {"status": "generated", "div": div}}  # fmt: skip


def provenance(pid: str, organization: str) -> dict[str, Any]:
    author = {"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
              "code": "author"}  # fmt: skip
    return {"resourceType": "Provenance", "id": f"provenance-{pid}",
            "target": [{"reference": f"Patient/{pid}"}], "recorded": RECORDED,
            "agent": [{"type": {"coding": [author]},
                       "who": {"reference": f"Organization/{organization}"}}]}  # fmt: skip


def device(pid: str, subject: dict[str, str]) -> dict[str, Any]:
    kind = {"system": "http://snomed.info/sct", "code": "14106009",
            "display": "Cardiac pacemaker, device"}  # fmt: skip
    return {"resourceType": "Device", "id": f"device-{pid}", "status": "active",
            "type": {"coding": [kind]}, "patient": subject}  # fmt: skip
