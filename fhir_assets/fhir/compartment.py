"""Which resource types live in the Patient compartment, from the FHIR spec's own data.

``data/compartmentdefinition-patient.json`` is the R4 (4.0.1) ``CompartmentDefinition/patient``
(http://hl7.org/fhir/R4/compartmentdefinition-patient.html), trimmed to the elements read here:
every R4 resource type is listed; a type with ``param`` (the search parameters that point at the
patient) is in the compartment, one without is never in it. Vendors such as Epic only allow
searching compartment types per patient (``profiles.build_queries``). Types R4B added (the
``*Definition`` products, ``Citation`` ...) are not in the R4 definition and count as outside.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

DEFINITION = Path(__file__).parent / "data" / "compartmentdefinition-patient.json"


@cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Type name -> the search parameters that put it in a patient's compartment (members
    only). Read once from the shipped file: no network, no model import."""
    definition = json.loads(DEFINITION.read_text(encoding="utf-8"))
    return {
        entry["code"]: tuple(entry["param"])
        for entry in definition["resource"]
        if entry.get("param")
    }


def in_patient_compartment(resource_type: str) -> bool:
    """Whether the R4 Patient CompartmentDefinition puts ``resource_type`` in the compartment."""
    return resource_type in patient_compartment()
