"""A small intake Questionnaire with ``definition``-linked items, its responses, and the sandbox's
definition-based ``QuestionnaireResponse/$extract`` (SDC 1.0 "Definition-based extraction").

The responses are seeded with the synthetic data (:func:`write_questionnaires`); the operation is
registered on the sekmet server at start (``sandbox/app.py``). It extracts an Observation for
every answered item whose ``definition`` points into ``Observation``, as a transaction Bundle of
POSTs without ids (what SDC servers return); a response whose Questionnaire the server does not
hold cannot be extracted and gets a 422 OperationOutcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import seed as seeding

INTAKE_URL = "http://fhir-assets.example/Questionnaire/intake"
UNKNOWN_URL = "http://fhir-assets.example/Questionnaire/retired"
OBSERVATION = "http://hl7.org/fhir/StructureDefinition/Observation#Observation."
LOINC = "http://loinc.org"
RESPONSES = 3  # patients with an answered intake form


def intake_questionnaire() -> dict[str, Any]:
    """Two items extract to Observations (weight, smoking status); the note is not extracted."""
    return {
        "resourceType": "Questionnaire",
        "id": "intake",
        "url": INTAKE_URL,
        "status": "active",
        "title": "Intake",
        "item": [
            {
                "linkId": "weight",
                "text": "Body weight (kg)",
                "type": "decimal",
                "definition": OBSERVATION + "valueQuantity",
                "code": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}],
            },
            {
                "linkId": "smoking",
                "text": "Tobacco smoking status",
                "type": "choice",
                "definition": OBSERVATION + "valueCodeableConcept",
                "code": [{"system": LOINC, "code": "72166-2", "display": "Tobacco smoking status"}],
            },
            {"linkId": "note", "text": "Anything else?", "type": "string"},
        ],
    }


def intake_response(number: int, patient_id: str, questionnaire: str) -> dict[str, Any]:
    """The answered intake form ``intake-<number>`` of one patient."""
    never = {"system": "http://snomed.info/sct", "code": "266919005", "display": "Never smoked"}
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"intake-{number}",
        "questionnaire": questionnaire,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": f"2026-02-0{number}T09:00:00Z",
        "item": [
            {"linkId": "weight", "answer": [{"valueDecimal": 60.5 + number}]},
            {"linkId": "smoking", "answer": [{"valueCoding": never}]},
            {"linkId": "note", "answer": [{"valueString": "no further remarks"}]},
        ],
    }


def write_questionnaires(ndjson: Path) -> None:
    """Seed the intake Questionnaire and responses of the first patients, plus one response to a
    Questionnaire the server does not hold (it cannot be extracted)."""
    patients = sorted(p["id"] for p in seeding.read_ndjson(ndjson / "Patient.ndjson"))
    chosen = patients[:RESPONSES]
    responses = [intake_response(n, pid, INTAKE_URL) for n, pid in enumerate(chosen, 1)]
    responses.append(intake_response(RESPONSES + 1, chosen[0], UNKNOWN_URL))
    seeding.write_ndjson(ndjson / "Questionnaire.ndjson", [intake_questionnaire()])
    seeding.write_ndjson(ndjson / "QuestionnaireResponse.ndjson", responses)


def extracted(response: dict[str, Any], questionnaire: dict[str, Any]) -> list[dict[str, Any]]:
    """The Observations the answers of ``response`` define (one per answer)."""
    items = {item["linkId"]: item for item in questionnaire.get("item") or ()}
    found = []
    for answered in response.get("item") or ():
        item = items.get(answered.get("linkId"), {})
        definition = str(item.get("definition", ""))
        if not definition.startswith(OBSERVATION):
            continue
        for answer in answered.get("answer") or ():
            found.append(observation(response, item, answer))
    return found


def observation(
    response: dict[str, Any], item: dict[str, Any], answer: dict[str, Any]
) -> dict[str, Any]:
    """One Observation from one answer (the definition names the value element)."""
    value: dict[str, Any]
    if "valueCoding" in answer:
        value = {"valueCodeableConcept": {"coding": [answer["valueCoding"]]}}
    elif "valueDecimal" in answer or "valueInteger" in answer:
        number = answer.get("valueDecimal", answer.get("valueInteger"))
        value = {"valueQuantity": {"value": number, "unit": "kg", "system": "http://unitsofmeasure.org",
                                   "code": "kg"}}  # fmt: skip
    else:
        value = {"valueString": str(next(iter(answer.values()), ""))}
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": item.get("code") or [], "text": item.get("text")},
        "subject": response.get("subject"),
        "effectiveDateTime": response.get("authored"),
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{response['id']}"}],
        **value,
    }
