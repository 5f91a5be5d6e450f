"""The asset-check queries pass on good tables and fail on each kind of bad one."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_assets.assets.checks import (
    count_check,
    future_check,
    reference_check,
    share_check,
    unique_check,
)
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance, Warehouse

from .helpers import SERVER, at, lines, patient

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def seed(warehouse: Warehouse) -> None:
    land(
        warehouse,
        "Patient",
        lines(
            patient("p1", "1", "2025-01-01T00:00:00Z"), patient("p2", "1", "2025-01-01T00:00:00Z")
        ),
        Provenance(SERVER, "s", at(1)),
    )
    observations = [
        {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Observation", "id": "o2", "subject": {"reference": "Patient/p9"}},
        {
            "resourceType": "Observation",
            "id": "o3",
            "meta": {"lastUpdated": "2030-01-01T00:00:00Z"},
            "subject": {"reference": "Patient/p2"},
        },
    ]
    land(warehouse, "Observation", lines(*observations), Provenance(SERVER, "s", at(1)))


def test_count_check_compares_current_rows_with_the_source_count(warehouse: Warehouse) -> None:
    seed(warehouse)
    good = count_check(warehouse, "patient", {"source_server": SERVER, "source_count": 2})
    bad = count_check(warehouse, "patient", {"source_server": SERVER, "source_count": 3})
    missing = count_check(warehouse, "patient", {})
    assert (good.passed, bad.passed, missing.passed) == (True, False, False)


def test_unique_check_fails_on_a_duplicated_id(warehouse: Warehouse) -> None:
    seed(warehouse)
    assert unique_check(warehouse, "patient").passed
    # a second row for p1 can only come from outside the landing path
    server = warehouse.dialect.literal(SERVER)
    insert = "INSERT INTO fhir_raw.patient (id, source_server, deleted) VALUES ('p1', {}, FALSE)"
    warehouse.fetch(insert.format(server))
    assert not unique_check(warehouse, "patient").passed


def test_future_check_flags_a_last_updated_after_now(warehouse: Warehouse) -> None:
    seed(warehouse)
    assert future_check(warehouse, "patient", NOW).passed
    result = future_check(warehouse, "observation", NOW)
    assert not result.passed and result.metadata["future_rows"].value == 1


def test_reference_check_warns_about_a_missing_patient(warehouse: Warehouse) -> None:
    seed(warehouse)
    result = reference_check(warehouse, "observation", "subject")
    assert not result.passed
    assert result.metadata["unresolved_patient_references"].value == 1


def test_reference_check_resolves_extracted_resources_against_their_servers_patients(
    warehouse: Warehouse,
) -> None:
    """``$extract`` lands what it makes under ``<server>#extract``; its Patient references
    point at the server's own patients."""
    seed(warehouse)
    extracted = [
        {"resourceType": "Observation", "id": "x1", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Observation", "id": "x2", "subject": {"reference": "Patient/p8"}},
    ]
    land(warehouse, "Observation", lines(*extracted), Provenance(SERVER + "#extract", "s", at(2)))
    result = reference_check(warehouse, "observation", "subject")
    assert result.metadata["unresolved_patient_references"].value == 2  # p9 and p8, not p1


def test_share_check_fails_past_the_threshold() -> None:
    assert share_check({"seen": 100, "quarantined": 1}, 0.01).passed
    assert not share_check({"seen": 100, "quarantined": 2}, 0.01).passed
