"""The one catalog of FHIR resource types that become raw assets.

The default catalog is today's 23 types plus every other US Core 6.1 type (``US_CORE``);
``FHIR_RESOURCE_TYPES`` picks any R4/R4B types instead (``select``). Adding a type to the default
is one name here; the asset, checks and jobs come from the factories. Patient-compartment
membership comes from the spec's CompartmentDefinition (``fhir.compartment``), never from here.
Nothing here touches the network: a server's own list of types is what ``fhir-assets doctor``
shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fhir.compartment import in_patient_compartment
from .fhir.names import UnsafeNameError, check_resource_type


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


def spec_for(resource_type: str) -> ResourceSpec:
    """The catalog entry of any R4/R4B type, its compartment membership from the spec.

    Raises:
        UnsafeNameError: not an R4/R4B resource type name.
    """
    name = check_resource_type(resource_type, source="FHIR_RESOURCE_TYPES")
    return ResourceSpec(name, in_patient_compartment(name))


# The types synced before US Core was covered (kept first: their order is the UI's).
CORE: tuple[str, ...] = (
    "Patient", "Encounter", "Observation", "Condition", "MedicationRequest",
    "MedicationAdministration", "Procedure", "AllergyIntolerance", "Immunization",
    "DiagnosticReport", "DocumentReference", "ServiceRequest", "Specimen", "ImagingStudy",
    "CareTeam", "FamilyMemberHistory", "Coverage", "Claim", "ExplanationOfBenefit",
    "Practitioner", "PractitionerRole", "Organization", "Location",
)  # fmt: skip
# US Core 6.1 resource types not in CORE (US Core 6.1.0, "Profiles and Extensions").
US_CORE: tuple[str, ...] = (
    "CarePlan", "Device", "Goal", "Medication", "MedicationDispense", "Provenance",
    "QuestionnaireResponse", "RelatedPerson",
)  # fmt: skip

CATALOG: tuple[ResourceSpec, ...] = tuple(spec_for(name) for name in CORE + US_CORE)

BY_TYPE = {spec.resource_type: spec for spec in CATALOG}


def select(names: str | None) -> tuple[ResourceSpec, ...]:
    """The default catalog, or the R4/R4B types named in a comma-separated list
    (``FHIR_RESOURCE_TYPES``), in its order, each once.

    Raises:
        ValueError: a name is not an R4/R4B resource type (names are case-sensitive).
    """
    if not names:
        return CATALOG
    wanted = dict.fromkeys(name.strip() for name in names.split(",") if name.strip())
    unknown = [name for name in wanted if not _valid(name)]
    if unknown:
        raise ValueError(
            f"FHIR_RESOURCE_TYPES: {unknown} are not R4/R4B resource type names (case-sensitive, "
            "e.g. CarePlan, QuestionnaireResponse); `fhir-assets doctor` prints the line for "
            "the types your server offers"
        )
    return tuple(spec_for(name) for name in wanted)


def _valid(name: str) -> bool:
    try:
        check_resource_type(name)
    except UnsafeNameError:
        return False
    return True
