"""SMART v1 and v2 scopes: parsing, the least set for a run, and the check before any data."""

from __future__ import annotations

import pytest

from fhir_assets.fhir import AuthError, minimal_scopes, parse_scope, require_read
from fhir_assets.fhir.scopes import Scope, missing_read_scope


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("system/Observation.read", Scope("system", "Observation", frozenset("rs"), "", 1)),
        ("patient/*.read", Scope("patient", "*", frozenset("rs"), "", 1)),
        ("user/Patient.write", Scope("user", "Patient", frozenset("cud"), "", 1)),
        ("system/*.*", Scope("system", "*", frozenset("cruds"), "", 1)),
        ("system/Observation.rs", Scope("system", "Observation", frozenset("rs"), "", 2)),
        ("system/Patient.cruds", Scope("system", "Patient", frozenset("cruds"), "", 2)),
        (
            "patient/Observation.rs?category=laboratory",
            Scope("patient", "Observation", frozenset("rs"), "category=laboratory", 2),
        ),
    ],
)
def test_parse_scope(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "launch",
        "openid",
        "offline_access",
        "launch/patient",
        "system/Patient.sr",
        "system/Patient.rw",
        "other/Patient.read",
        "system/patient.read",
        "system/Patient",
    ],
)
def test_non_resource_or_malformed_scopes_grant_nothing(text: str) -> None:
    assert parse_scope(text) is None


def test_minimal_scopes_v1_and_v2() -> None:
    types = ["Patient", "Observation", "Patient"]
    assert minimal_scopes(types, v2=False) == "system/Observation.read system/Patient.read"
    assert minimal_scopes(types, v2=True) == "system/Observation.rs system/Patient.rs"
    assert (
        minimal_scopes(["Patient"], v2=True, context="user", extra=["offline_access"])
        == "user/Patient.rs offline_access"
    )


@pytest.mark.parametrize(
    ("granted", "resource_type", "missing"),
    [
        ("system/*.read", "Observation", None),
        ("system/Observation.rs", "Observation", None),
        ("system/*.cruds", "Observation", None),
        ("system/Patient.read", "Observation", "system/Observation.read"),
        ("system/Patient.rs", "Observation", "system/Observation.rs"),
        ("system/Observation.r", "Observation", "system/Observation.rs"),  # read without search
        ("system/Observation.write", "Observation", "system/Observation.read"),
        # a granular scope covers only some Observations: a full pull still needs the type
        ("patient/Observation.rs?category=laboratory", "Observation", "patient/Observation.rs"),
        ("", "Patient", "system/Patient.read"),
    ],
)
def test_missing_read_scope(granted: str, resource_type: str, missing: str | None) -> None:
    assert missing_read_scope(granted, resource_type) == missing


def test_require_read_names_every_missing_scope() -> None:
    with pytest.raises(AuthError) as caught:
        require_read("system/Patient.rs", ["Patient", "Observation", "Condition"])
    text = str(caught.value)
    assert "missing scope system/Observation.rs, system/Condition.rs" in text
    assert "granted: system/Patient.rs" in text
    require_read("system/Patient.rs system/Observation.rs", ["Patient", "Observation"])
