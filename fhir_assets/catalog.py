"""The one catalog of FHIR resource types that become raw assets.

Adding a resource type is one line here; the asset, checks and jobs come from the factories.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """One FHIR resource type synced into its own raw table.

    Attributes:
        resource_type: the FHIR type name, e.g. ``MedicationRequest``.
        patient_compartment: whether the type lives in the Patient compartment (vendors such as
            Epic only allow searching these per patient).
    """

    resource_type: str
    patient_compartment: bool = True

    @property
    def table(self) -> str:
        """Table name and last asset-key part: the type in lower case (``medicationrequest``)."""
        return self.resource_type.lower()


CATALOG: tuple[ResourceSpec, ...] = (
    ResourceSpec("Patient"),
    ResourceSpec("Encounter"),
    ResourceSpec("Observation"),
    ResourceSpec("Condition"),
    ResourceSpec("MedicationRequest"),
    ResourceSpec("MedicationAdministration"),
    ResourceSpec("Procedure"),
    ResourceSpec("AllergyIntolerance"),
    ResourceSpec("Immunization"),
    ResourceSpec("DiagnosticReport"),
    ResourceSpec("DocumentReference"),
    ResourceSpec("ServiceRequest"),
    ResourceSpec("Specimen"),
    ResourceSpec("ImagingStudy"),
    ResourceSpec("CareTeam"),
    ResourceSpec("FamilyMemberHistory"),
    ResourceSpec("Coverage"),
    ResourceSpec("Claim"),
    ResourceSpec("ExplanationOfBenefit"),
    ResourceSpec("QuestionnaireResponse"),  # the input of the $extract asset (docs/operations.md)
    ResourceSpec("Practitioner", patient_compartment=False),
    ResourceSpec("PractitionerRole", patient_compartment=False),
    ResourceSpec("Organization", patient_compartment=False),
    ResourceSpec("Location", patient_compartment=False),
)

BY_TYPE = {spec.resource_type: spec for spec in CATALOG}


def select(names: str | None) -> tuple[ResourceSpec, ...]:
    """The catalog, or the entries named in a comma-separated list (``FHIR_RESOURCE_TYPES``)."""
    if not names:
        return CATALOG
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BY_TYPE]
    if unknown:
        raise ValueError(f"unknown resource types {unknown}; known: {sorted(BY_TYPE)}")
    return tuple(BY_TYPE[name] for name in wanted)
