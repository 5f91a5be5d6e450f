"""The one rule for resource-type names that reach SQL or the file system.

A FHIR server, a proxy or an export bucket controls every ``type`` in a Bulk Data manifest and
every ``resourceType`` in a file. Such a name becomes a table name (``fhir_raw.<type>``) and part
of a file name, so it is accepted only if it is an R4/R4B resource type name (``RESOURCE_TYPES``
and ``R4_ONLY``): any such name lands, in a table created on first sight (the names are plain
ASCII words, which the SQL identifier gate accepts as they are). Anything else is refused with an
error that names the offending value, quoted safely (``repr``, cut short), and says why.

``RESOURCE_TYPES`` is the resource registry of fhir.resources' R4B models (the package ships no
R4 4.0.1 models) plus the R4 4.0.1 names that R4B dropped (``R4_ONLY``), so that an R4 server's
``MedicinalProduct`` export is not refused. Both are committed as literals so that the check needs
no import of the models; ``fhir_assets_tests/security/test_rules.py`` keeps the R4B part equal to
the registry.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from .errors import FhirError

# FHIR R4 3.1.0.1: a resource type name is an upper-case letter followed by letters.
TYPE_NAME = re.compile(r"[A-Z][A-Za-z]+")

# fmt: off
RESOURCE_TYPES: tuple[str, ...] = (
    "Account", "ActivityDefinition", "AdministrableProductDefinition", "AdverseEvent",
    "AllergyIntolerance", "Appointment", "AppointmentResponse", "AuditEvent", "Basic", "Binary",
    "BiologicallyDerivedProduct", "BodyStructure", "Bundle", "CapabilityStatement", "CarePlan",
    "CareTeam", "CatalogEntry", "ChargeItem", "ChargeItemDefinition", "Citation", "Claim",
    "ClaimResponse", "ClinicalImpression", "ClinicalUseDefinition", "CodeSystem", "Communication",
    "CommunicationRequest", "CompartmentDefinition", "Composition", "ConceptMap", "Condition",
    "Consent", "Contract", "Coverage", "CoverageEligibilityRequest", "CoverageEligibilityResponse",
    "DetectedIssue", "Device", "DeviceDefinition", "DeviceMetric", "DeviceRequest",
    "DeviceUseStatement", "DiagnosticReport", "DocumentManifest", "DocumentReference", "Encounter",
    "Endpoint", "EnrollmentRequest", "EnrollmentResponse", "EpisodeOfCare", "EventDefinition",
    "Evidence", "EvidenceReport", "EvidenceVariable", "ExampleScenario", "ExplanationOfBenefit",
    "FamilyMemberHistory", "Flag", "Goal", "GraphDefinition", "Group", "GuidanceResponse",
    "HealthcareService", "ImagingStudy", "Immunization", "ImmunizationEvaluation",
    "ImmunizationRecommendation", "ImplementationGuide", "Ingredient", "InsurancePlan", "Invoice",
    "Library", "Linkage", "List", "Location", "ManufacturedItemDefinition", "Measure",
    "MeasureReport", "Media", "Medication", "MedicationAdministration", "MedicationDispense",
    "MedicationKnowledge", "MedicationRequest", "MedicationStatement",
    "MedicinalProductDefinition", "MessageDefinition", "MessageHeader", "MolecularSequence",
    "NamingSystem", "NutritionOrder", "NutritionProduct", "Observation", "ObservationDefinition",
    "OperationDefinition", "OperationOutcome", "Organization", "OrganizationAffiliation",
    "PackagedProductDefinition", "Parameters", "Patient", "PaymentNotice", "PaymentReconciliation",
    "Person", "PlanDefinition", "Practitioner", "PractitionerRole", "Procedure", "Provenance",
    "Questionnaire", "QuestionnaireResponse", "RegulatedAuthorization", "RelatedPerson",
    "RequestGroup", "ResearchDefinition", "ResearchElementDefinition", "ResearchStudy",
    "ResearchSubject", "RiskAssessment", "Schedule", "SearchParameter", "ServiceRequest", "Slot",
    "Specimen", "SpecimenDefinition", "StructureDefinition", "StructureMap", "Subscription",
    "SubscriptionStatus", "SubscriptionTopic", "Substance", "SubstanceDefinition",
    "SupplyDelivery", "SupplyRequest", "Task", "TerminologyCapabilities", "TestReport",
    "TestScript", "ValueSet", "VerificationResult", "VisionPrescription",
)
# R4 4.0.1 resources that R4B removed (the MedicinalProduct* and Substance* families were remodelled
# as *Definition resources; the two *EvidenceSynthesis resources became Evidence).
R4_ONLY: tuple[str, ...] = (
    "EffectEvidenceSynthesis", "MedicinalProduct", "MedicinalProductAuthorization",
    "MedicinalProductContraindication", "MedicinalProductIndication",
    "MedicinalProductIngredient", "MedicinalProductInteraction", "MedicinalProductManufactured",
    "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect", "RiskEvidenceSynthesis", "SubstanceNucleicAcid",
    "SubstancePolymer", "SubstanceProtein", "SubstanceReferenceInformation",
    "SubstanceSourceMaterial", "SubstanceSpecification",
)
# fmt: on
_KNOWN = frozenset(RESOURCE_TYPES + R4_ONLY)
# Lower-case name -> the type (file names such as ``1.careplan.ndjson``).
BY_LOWER = {name.lower(): name for name in _KNOWN}


class UnsafeNameError(FhirError, ValueError):
    """A name from outside (a server, a file) is not one the project accepts.

    Attributes:
        value: the refused value, as it came.
    """

    def __init__(self, message: str, value: object) -> None:
        super().__init__(message)
        self.value = value


def shown(value: object, limit: int = 80) -> str:
    """``value`` quoted safely for a message: its ``repr``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def is_resource_type(value: object) -> TypeGuard[str]:
    """Whether ``value`` is an R4 resource type name (exactly, ASCII, case-sensitive)."""
    return isinstance(value, str) and TYPE_NAME.fullmatch(value) is not None and value in _KNOWN


def check_resource_type(value: object, *, source: str = "input") -> str:
    """``value`` if it is an R4/R4B resource type name.

    Args:
        value: the name as it came from outside.
        source: where the value came from, for the message (``the manifest``, a file name).

    Raises:
        UnsafeNameError: naming the value, quoted safely, and why it is refused.
    """
    if not is_resource_type(value):
        raise UnsafeNameError(
            f"{source} names resource type {shown(value)}, which is not an R4/R4B resource "
            "type name (fhir_assets/fhir/names.py lists them; names are case-sensitive): "
            "refusing to land it, as the name would become a table and file name",
            value,
        )
    return value
