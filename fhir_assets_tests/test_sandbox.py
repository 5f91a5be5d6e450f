"""The sandbox: seeded, authenticated, isolated per start."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fhir_assets.fhir import RequestError
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.seed import claim_pair


def test_sandbox_requires_a_token_and_grants_the_demo_client(sandbox: Sandbox) -> None:
    with sandbox.fhir_client("system/Patient.read") as client:
        assert client.get("Patient", {"_count": 1})["resourceType"] == "Bundle"
        with pytest.raises(RequestError) as caught:
            client.get("Observation", {"_count": 1})
    assert caught.value.status == 403


def add_patient(server: Sandbox) -> None:
    with server.fhir_client() as client:
        client.request(
            "POST",
            "Patient",
            json={"resourceType": "Patient", "gender": "other"},
            headers={"Content-Type": "application/fhir+json"},
        )


def test_writes_to_one_sandbox_never_reach_the_cache(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    first = make_sandbox()
    before = first.counts(["Patient"])["Patient"]
    add_patient(first)
    assert first.counts(["Patient"])["Patient"] == before + 1
    second = make_sandbox()
    assert second.counts(["Patient"])["Patient"] == before


def test_a_sandbox_that_loses_its_port_takes_another_and_serves_its_own_data(
    sandbox: Sandbox, make_sandbox: Callable[..., Sandbox]
) -> None:
    # Two `make demo`s at once both find the default port free; the loser must not talk to the
    # winner's server (another client, another database) but bind a port of its own.
    loser = make_sandbox(port=sandbox.port)
    assert loser.port != sandbox.port
    add_patient(loser)
    assert loser.counts(["Patient"])["Patient"] == sandbox.counts(["Patient"])["Patient"] + 1


def test_derived_claims_are_deterministic_and_reference_their_encounter() -> None:
    encounter = {
        "id": "enc-0abc12",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-01-02T10:00:00Z", "end": "2026-01-02T10:30:00Z"},
    }
    coverage = {"id": "cov-1", "payor": [{"reference": "Organization/payer"}]}
    first = claim_pair(encounter, coverage, "0abc12")
    assert first == claim_pair(encounter, coverage, "0abc12")
    claim, eob = first
    assert claim["item"][0]["encounter"] == [{"reference": "Encounter/enc-0abc12"}]
    assert eob["claim"] == {"reference": "Claim/claim-0abc12"}
    assert eob["payment"]["amount"]["value"] == round(claim["total"]["value"] * 0.8, 2)
