"""The shipped Patient CompartmentDefinition is the R4 spec's, and the catalog takes its
compartment membership from it."""

from __future__ import annotations

import json

import pytest

from fhir_assets.catalog import CATALOG, select
from fhir_assets.fhir.compartment import DEFINITION, patient_compartment
from fhir_assets.fhir.names import R4_ONLY, RESOURCE_TYPES

# http://hl7.org/fhir/R4/compartmentdefinition-patient.html (4.0.1): "The following resources
# may be in this compartment", with their inclusion criteria.
SPEC_MEMBERS = {
    "Account": "subject", "AdverseEvent": "subject",
    "AllergyIntolerance": "patient, recorder, asserter", "Appointment": "actor",
    "AppointmentResponse": "actor", "AuditEvent": "patient", "Basic": "patient, author",
    "BodyStructure": "patient", "CarePlan": "patient, performer",
    "CareTeam": "patient, participant", "ChargeItem": "subject", "Claim": "patient, payee",
    "ClaimResponse": "patient", "ClinicalImpression": "subject",
    "Communication": "subject, sender, recipient",
    "CommunicationRequest": "subject, sender, recipient, requester",
    "Composition": "subject, author, attester", "Condition": "patient, asserter",
    "Consent": "patient", "Coverage": "policy-holder, subscriber, beneficiary, payor",
    "CoverageEligibilityRequest": "patient", "CoverageEligibilityResponse": "patient",
    "DetectedIssue": "patient", "DeviceRequest": "subject, performer",
    "DeviceUseStatement": "subject", "DiagnosticReport": "subject",
    "DocumentManifest": "subject, author, recipient", "DocumentReference": "subject, author",
    "Encounter": "patient", "EnrollmentRequest": "subject", "EpisodeOfCare": "patient",
    "ExplanationOfBenefit": "patient, payee", "FamilyMemberHistory": "patient",
    "Flag": "patient", "Goal": "patient", "Group": "member", "ImagingStudy": "patient",
    "Immunization": "patient", "ImmunizationEvaluation": "patient",
    "ImmunizationRecommendation": "patient", "Invoice": "subject, patient, recipient",
    "List": "subject, source", "MeasureReport": "patient", "Media": "subject",
    "MedicationAdministration": "patient, performer, subject",
    "MedicationDispense": "subject, patient, receiver", "MedicationRequest": "subject",
    "MedicationStatement": "subject", "MolecularSequence": "patient",
    "NutritionOrder": "patient", "Observation": "subject, performer", "Patient": "link",
    "Person": "patient", "Procedure": "patient, performer", "Provenance": "patient",
    "QuestionnaireResponse": "subject, author", "RelatedPerson": "patient",
    "RequestGroup": "subject, participant", "ResearchSubject": "individual",
    "RiskAssessment": "subject", "Schedule": "actor", "ServiceRequest": "subject, performer",
    "Specimen": "subject", "SupplyDelivery": "patient", "SupplyRequest": "subject",
    "VisionPrescription": "patient",
}  # fmt: skip
# Types R4B added, which the R4 definition cannot list; Parameters is in no compartment list.
R4B_ADDED = {
    "AdministrableProductDefinition", "Citation", "ClinicalUseDefinition", "EvidenceReport",
    "Ingredient", "ManufacturedItemDefinition", "MedicinalProductDefinition",
    "NutritionProduct", "PackagedProductDefinition", "RegulatedAuthorization",
    "SubscriptionStatus", "SubscriptionTopic", "SubstanceDefinition", "Parameters",
}  # fmt: skip


def test_the_shipped_definition_is_the_r4_specs() -> None:
    definition = json.loads(DEFINITION.read_text())
    assert definition["url"] == "http://hl7.org/fhir/CompartmentDefinition/patient"
    assert definition["version"] == "4.0.1" and definition["code"] == "Patient"
    members = {code: ", ".join(params) for code, params in patient_compartment().items()}
    assert members == SPEC_MEMBERS


def test_the_definition_lists_every_r4_type_in_or_out() -> None:
    listed = {entry["code"] for entry in json.loads(DEFINITION.read_text())["resource"]}
    assert listed == set(RESOURCE_TYPES + R4_ONLY) - R4B_ADDED


def test_catalog_membership_follows_the_definition() -> None:
    outside = {spec.resource_type for spec in CATALOG if not spec.patient_compartment}
    # the old hand flags, and Device and Medication, which the spec leaves out
    assert outside == {"Practitioner", "PractitionerRole", "Organization", "Location", "Device",
                       "Medication"}  # fmt: skip
    assert [s.patient_compartment for s in select("Group,Task,SubscriptionTopic")] == [
        True, False, False,
    ]  # fmt: skip


US_CORE_6_1 = {
    "AllergyIntolerance", "CarePlan", "CareTeam", "Condition", "Coverage", "Device",
    "DiagnosticReport", "DocumentReference", "Encounter", "Goal", "Immunization", "Location",
    "Medication", "MedicationDispense", "MedicationRequest", "Observation", "Organization",
    "Patient", "Practitioner", "PractitionerRole", "Procedure", "Provenance",
    "QuestionnaireResponse", "RelatedPerson", "ServiceRequest", "Specimen",
}  # fmt: skip


def test_the_default_catalog_covers_us_core_6_1() -> None:
    types = [spec.resource_type for spec in CATALOG]
    assert US_CORE_6_1 <= set(types) and len(types) == len(set(types)) == 31


def test_fhir_resource_types_takes_any_r4_type_and_names_the_wrong_ones() -> None:
    chosen = select("Goal, CarePlan,Device,Provenance,QuestionnaireResponse,Goal")
    assert [s.resource_type for s in chosen] == [
        "Goal", "CarePlan", "Device", "Provenance", "QuestionnaireResponse",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"\['careplan', 'Foo'\] are not R4/R4B resource type"):
        select("Patient,careplan,Foo")
