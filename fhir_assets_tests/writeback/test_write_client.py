"""The write interactions of fhir_assets.fhir.write against a fresh sekmet sandbox."""

from __future__ import annotations

import pytest

from fhir_assets.fhir import FhirClient, RequestError
from fhir_assets.fhir.write import (
    BundleEntry,
    PreconditionFailedError,
    WriteClient,
    is_retry_safe,
    parse_location,
    token,
)
from fhir_assets.sandbox import Sandbox

from .conftest import SYSTEM, by_identifier, count_scores, score


def test_write_client_conditional_create_returns_the_existing_resource(
    client: FhirClient, patients: list[str]
) -> None:
    writes = WriteClient(client)
    query = f"identifier={SYSTEM}|{patients[0]}"

    first = writes.create(score(patients[0], 1), if_none_exist=query)
    second = writes.create(score(patients[0], 2), if_none_exist=query)

    assert (first.status, first.version_id) == (201, "1")
    assert (second.status, second.id) == (200, first.id)
    assert [r["valueInteger"] for r in by_identifier(client, patients[0])] == [1]


def test_write_client_version_aware_update_refuses_a_stale_version(
    client: FhirClient, patients: list[str]
) -> None:
    writes = WriteClient(client)
    created = writes.create(score(patients[0], 1))
    resource = {**score(patients[0], 2), "id": created.id}

    updated = writes.update(resource, version_id="1")
    with pytest.raises(PreconditionFailedError) as stale:
        writes.update({**resource, "valueInteger": 3}, version_id="1")

    assert (updated.status, updated.version_id) == (200, "2")
    assert stale.value.status == 412 and stale.value.issues
    assert by_identifier(client, patients[0])[0]["valueInteger"] == 2


def test_write_client_conditional_update_creates_then_updates_the_match(
    client: FhirClient, patients: list[str]
) -> None:
    writes = WriteClient(client)
    criteria = f"identifier={SYSTEM}|{patients[0]}"

    created = writes.conditional_update(score(patients[0], 1), criteria)
    updated = writes.conditional_update(score(patients[0], 2), criteria)

    assert (created.status, updated.status) == (201, 200)
    assert (updated.id, updated.version_id) == (created.id, "2")
    assert len(by_identifier(client, patients[0])) == 1


def test_write_client_delete_leaves_the_resource_gone(
    client: FhirClient, patients: list[str]
) -> None:
    writes = WriteClient(client)
    created = writes.create(score(patients[0], 1))
    assert created.id is not None

    deleted = writes.delete("Observation", created.id)

    assert deleted.ok
    with pytest.raises(RequestError) as gone:
        client.get(f"Observation/{created.id}")
    assert gone.value.status == 410


def test_transaction_resolves_urn_uuid_references_between_entries(client: FhirClient) -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": "new-patient"}],
        "name": [{"family": "Writeback"}],
    }
    patient_entry = BundleEntry.create(patient, if_none_exist=f"identifier={SYSTEM}|new-patient")
    observation = {**score("x", 5), "subject": {"reference": patient_entry.full_url}}

    outcomes = WriteClient(client).submit([patient_entry, BundleEntry.create(observation)])

    assert [o.status for o in outcomes] == [201, 201]
    assert [o.resource_type for o in outcomes] == ["Patient", "Observation"]
    stored = client.get(f"Observation/{outcomes[1].id}")
    assert stored["subject"]["reference"] == f"Patient/{outcomes[0].id}"


def test_failed_transaction_changes_nothing(
    server: Sandbox, client: FhirClient, patients: list[str]
) -> None:
    writes = WriteClient(client)
    existing = writes.create(score(patients[0], 1))
    before = server.counts(["Observation"])
    entries = [
        BundleEntry.create(score(patients[1], 1)),
        BundleEntry.update({**score(patients[0], 2), "id": existing.id}, version_id="7"),
    ]

    with pytest.raises(PreconditionFailedError):
        writes.submit(entries)

    assert server.counts(["Observation"]) == before
    assert count_scores(client) == 1
    assert by_identifier(client, patients[0])[0]["meta"]["versionId"] == "1"


def test_batch_reports_each_entry_on_its_own(client: FhirClient, patients: list[str]) -> None:
    writes = WriteClient(client)
    existing = writes.create(score(patients[0], 1))
    entries = [
        BundleEntry.create(score(patients[1], 1)),
        BundleEntry.update({**score(patients[0], 2), "id": existing.id}, version_id="7"),
    ]

    outcomes = writes.submit(entries, kind="batch")

    assert [o.status for o in outcomes] == [201, 412]
    assert outcomes[1].issues and not outcomes[1].ok
    assert count_scores(client) == 2


def test_submit_idempotent_refuses_an_unconditional_create(client: FhirClient) -> None:
    from fhir_assets.fhir import RetryPolicy

    entries = [BundleEntry.create(score("p", 1))]

    assert not is_retry_safe(entries)
    with pytest.raises(ValueError, match="unconditional"):
        WriteClient(client).submit_idempotent(entries, RetryPolicy())


@pytest.mark.parametrize(
    ("location", "parsed"),
    [
        ("http://h/fhir/Observation/1/_history/3", ("Observation", "1", "3")),
        ("Observation/1", ("Observation", "1", None)),
        ("", (None, None, None)),
    ],
)
def test_parse_location_splits_type_id_and_version(
    location: str, parsed: tuple[str | None, ...]
) -> None:
    assert parse_location(location) == parsed


def test_token_escapes_search_separators() -> None:
    assert token("urn:a", r"x,y|z$\w") == r"urn:a|x\,y\|z\$\\w"
