"""Server profiles: detection, vendor quirks turned into queries and headers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from fhir_assets.fhir import ConfigurationError, FhirClient
from fhir_assets.fhir.profiles import (
    EPIC,
    GENERIC,
    HAPI,
    ORACLE,
    SEKMET,
    apply_profile,
    build_queries,
    detect_profile,
    get_profile,
    group_patient_ids,
    resolve_profile,
)
from fhir_assets.fhir.window import Window
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.sync.fakefhir import Script, fake_fhir

DAY = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"software": {"name": "Epic"}, "publisher": "Epic Systems Corporation"}, EPIC),
        ({"software": {"name": "Millennium"}, "publisher": "Cerner"}, ORACLE),
        ({"software": {"name": "HAPI FHIR Server"}}, HAPI),
        ({"software": {"name": "SEKMET FHIR R4 Tester"}}, SEKMET),
        ({"publisher": "Not provided"}, GENERIC),
        ({}, GENERIC),
    ],
)
def test_detect_profile_from_capability_statement(capabilities: dict, expected: object) -> None:
    assert detect_profile(capabilities) is expected


def test_get_profile_by_name_and_alias() -> None:
    assert get_profile("Cerner") is ORACLE
    assert get_profile(" epic ") is EPIC
    with pytest.raises(ConfigurationError, match="unknown FHIR server profile 'nope'"):
        get_profile("nope")


def test_resolve_profile_detects_the_sandbox(sandbox: Sandbox) -> None:
    with sandbox.fhir_client() as client:
        assert resolve_profile(client) is SEKMET
        assert resolve_profile(client, "hapi") is HAPI


def test_generic_queries_window_by_last_updated() -> None:
    (query,) = build_queries(GENERIC, "Observation", DAY)
    assert query.search_params(100) == [
        ("_lastUpdated", "ge2026-03-01T00:00:00.000Z"),
        ("_lastUpdated", "lt2026-03-02T00:00:00.000Z"),
        ("_count", "100"),
    ]


def test_epic_searches_per_patient_with_category_and_date() -> None:
    queries = build_queries(EPIC, "Observation", DAY, patient_ids=["a", "b"])
    categories = EPIC.required_params["Observation"][1]
    assert len(queries) == 2 * len(categories)
    first = queries[0].search_params(EPIC.page_size)
    assert first == [
        ("patient", "a"),
        ("category", categories[0]),
        ("date", "ge2026-03-01T00:00:00.000Z"),
        ("date", "lt2026-03-02T00:00:00.000Z"),
        ("_count", "100"),
    ]


def test_epic_types_without_a_date_parameter_are_fetched_whole_per_patient() -> None:
    (query,) = build_queries(EPIC, "AllergyIntolerance", DAY, patient_ids=["a"])
    assert query.search_params(10) == [("patient", "a"), ("_count", "10")]
    (practitioners,) = build_queries(EPIC, "Practitioner", DAY, patient_compartment=False)
    assert practitioners.window is None


def test_epic_needs_patients_and_episode_types() -> None:
    with pytest.raises(ConfigurationError, match="FHIR_PATIENT_GROUP"):
        build_queries(EPIC, "Encounter", DAY)
    with pytest.raises(
        ConfigurationError, match="requires EpisodeOfCare searches to name a 'type'"
    ):
        build_queries(EPIC, "EpisodeOfCare", DAY, patient_ids=["a"])
    site = replace(
        EPIC, required_params={**EPIC.required_params, "EpisodeOfCare": ("type", ("X", "Y"))}
    )
    assert len(build_queries(site, "EpisodeOfCare", DAY, patient_ids=["a"])) == 2


def test_oracle_joins_repeated_values_with_commas() -> None:
    profile = replace(ORACLE, required_params={"Observation": ("category", ("a", "b"))})
    (query,) = build_queries(profile, "Observation", DAY)
    assert query.params == (("category", "a,b"),)


def test_epic_client_id_header_is_sent() -> None:
    script = Script(patients=3)
    with fake_fhir(script) as base, FhirClient(base) as client:
        apply_profile(client, EPIC, client_id="my-epic-app")
        client.get("Patient")
    assert script.headers[-1]["Epic-Client-ID"] == "my-epic-app"


def test_group_patient_ids_reads_group_members(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    with sandbox.fhir_client() as client:
        patients = [p["id"] for p in client.search("Patient", {"_count": 3})][:3]
        members = [{"entity": {"reference": f"Patient/{pid}"}} for pid in patients]
        group = {"resourceType": "Group", "type": "person", "actual": True, "member": members}
        created = client.request(
            "POST",
            "Group",
            data=orjson.dumps(group),
            headers={"Content-Type": "application/fhir+json"},
        )
        assert group_patient_ids(client, created["id"]) == patients
