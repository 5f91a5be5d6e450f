"""The write-scope check and the local R4B validation."""

from __future__ import annotations

import pytest

from fhir_assets.fhir import FhirClient
from fhir_assets.sandbox import Sandbox
from fhir_assets.writeback import granted_scope, permits_write, validate_resource
from fhir_assets.writeback.audit import request_hash

from .conftest import score


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ("system/*.write", True),
        ("system/*.*", True),
        ("system/Observation.write", True),
        ("system/*.read system/Observation.*", True),
        ("system/*.cu", True),
        ("system/Observation.cruds", True),
        ("system/Observation.cu?category=survey", True),
        ("system/*.read", False),
        ("system/*.rs", False),
        ("system/*.c", False),  # create only: an update would be refused mid-run
        ("system/Patient.write", False),
        ("patient/*.write", False),
        ("", False),
    ],
)
def test_permits_write_needs_create_and_update_on_the_type(granted: str, allowed: bool) -> None:
    assert permits_write(granted, "Observation") is allowed


@pytest.mark.parametrize(("requested", "allowed"), [("system/*.read", False), ("system/*.*", True)])
def test_granted_scope_comes_from_the_token_response(
    sandbox: Sandbox, requested: str, allowed: bool
) -> None:
    with sandbox.fhir_client(requested) as client:
        granted = granted_scope(client)

    assert granted == requested
    assert permits_write(granted or "", "Observation") is allowed


def test_granted_scope_is_none_without_smart_auth(sandbox: Sandbox) -> None:
    with FhirClient(sandbox.base_url) as client:
        assert granted_scope(client) is None


def test_validate_resource_accepts_a_valid_observation() -> None:
    assert validate_resource(score("p1", 3)) == ()


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ({"code": None}, "Observation.code"),
        ({"subject": "Patient/sideways"}, "Observation.subject"),
        ({"valueInteger": "many"}, "Observation.valueInteger"),
        ({"resourceType": "Nonsense"}, "not a FHIR resource type"),
    ],
)
def test_validate_resource_names_the_bad_element_without_its_value(
    broken: dict[str, object], expected: str
) -> None:
    resource = {k: v for k, v in {**score("p1", 3), **broken}.items() if v is not None}

    errors = validate_resource(resource)

    assert errors and any(expected in e for e in errors)
    assert not any("many" in e or "sideways" in e for e in errors)


def test_request_hash_is_canonical_and_hides_the_body() -> None:
    resource = score("p1", 3)
    reordered = dict(reversed(list(resource.items())))

    assert request_hash(resource) == request_hash(reordered)
    assert request_hash(resource) != request_hash(score("p1", 4))
    assert "p1" not in request_hash(resource)
