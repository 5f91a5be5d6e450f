"""Fast structural checks vs full R4B model validation."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_assets.warehouse.landing import LandingOptions, land
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.validation import ResourceError, check

from .helpers import SERVER, at, lines, patient, quarantine

MODEL_INVALID = patient("p2", "1", "2025-01-01T00:00:00Z", birthDate="yesterday")


@pytest.mark.parametrize(
    ("resource", "error"),
    [
        ([1], "not a JSON object"),
        ({"resourceType": "Patient"}, "id is missing"),
        ({"resourceType": "Patient", "id": "a b"}, "id is missing or not a FHIR id"),
        (patient("p", "1", "2025-01-01"), "meta.lastUpdated is not a FHIR instant"),
        (patient("p", "1", "2025-02-30T00:00:00Z"), "not a valid date and time"),
        (patient("p", "1", "2025-01-01T00:00:00"), "meta.lastUpdated is not a FHIR instant"),
        ({"resourceType": "Patient", "id": "p", "meta": {"versionId": 3}}, "versionId"),
    ],
)
def test_check_rejects_structural_problems(resource: Any, error: str) -> None:
    with pytest.raises(ResourceError, match=error):
        check(resource, "Patient")


@pytest.mark.parametrize(("mode", "landed", "quarantined"), [("fast", 2, 0), ("full", 1, 1)])
def test_full_validation_quarantines_what_fast_mode_lands(
    duckdb_resource: Any, mode: str, landed: int, quarantined: int
) -> None:
    entries = lines(patient("p1", "1", "2025-01-01T00:00:00Z", gender="female"), MODEL_INVALID)
    with duckdb_resource.open_warehouse() as warehouse:
        result = land(
            warehouse,
            "Patient",
            entries,
            Provenance(SERVER, "s", at(1)),
            LandingOptions(validation=mode, workers=2),
        )
        assert (result.landed, result.quarantined) == (landed, quarantined)
        if mode == "full":
            [row] = quarantine(warehouse)
            assert row[2] == 2 and row[3].startswith("birthDate")
            assert "yesterday" not in row[3]  # the error names no content
