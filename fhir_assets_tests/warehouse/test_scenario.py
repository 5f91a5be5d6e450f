"""The landing scenario of issue 6, run on DuckDB and on the Snowflake emulator.

load -> re-load -> newer version -> older version arriving late -> delete, with an invalid
resource and a non-JSON line along the way. Each step's counts are asserted, and both
warehouses must end with identical tables.
"""

from __future__ import annotations

from typing import Any

from fhir_assets.warehouse.landing import LandingOptions, LandingResult, land
from fhir_assets.warehouse.protocol import Provenance, Warehouse
from fhir_assets.warehouse.tombstones import Tombstone

from .helpers import SERVER, at, current, lines, patient, quarantine

FIRST = lines(
    patient("p1", "1", "2025-01-01T10:00:00Z", gender="female"),
    patient("p2", "1", "2025-01-01T10:00:00+02:00", gender="male"),
    patient("p3", "1", "2025-01-01T10:00:00.123Z"),
    {"resourceType": "Patient", "meta": {"versionId": "1"}},  # invalid: no id
    "{not json\n",
    {"resourceType": "Observation", "id": "o1"},  # wrong type for the file
)


def counts(result: LandingResult) -> tuple[int, ...]:
    return (
        result.seen,
        result.landed,
        result.updated,
        result.deleted,
        result.unchanged,
        result.quarantined,
    )


def run_scenario(warehouse: Warehouse, history: bool = False) -> list[tuple[int, ...]]:
    """Every step of the scenario; returns the counts of each landing."""

    def step(warehouse: Warehouse, entries: list[Any], sync_id: str, day: int) -> LandingResult:
        options = LandingOptions(batch_rows=2, history=history)
        return land(warehouse, "Patient", entries, Provenance(SERVER, sync_id, at(day)), options)

    return [
        counts(step(warehouse, FIRST, "load", 1)),
        counts(step(warehouse, FIRST, "reload", 2)),
        counts(step(warehouse, lines(patient("p1", "2", "2025-01-02T10:00:00Z")), "newer", 3)),
        counts(
            step(
                warehouse,
                lines(
                    patient("p1", "1", "2025-01-01T10:00:00Z", gender="other"),  # older
                    patient("p2", "1", "2025-01-01T10:00:00+02:00", gender="other"),  # equal
                ),
                "late",
                4,
            )
        ),
        counts(
            step(
                warehouse,
                [
                    *lines(
                        {
                            "resourceType": "Bundle",
                            "type": "transaction",
                            "entry": [{"request": {"method": "DELETE", "url": "Patient/p3"}}],
                        },
                        source="deleted/Patient.ndjson",
                    ),
                    ("history", 1, Tombstone("p4", "3", "2025-01-03T00:00:00Z")),
                ],
                "delete",
                5,
            )
        ),
        counts(step(warehouse, FIRST, "reload-after-delete", 6)),
    ]


def test_scenario_counts_each_step(warehouse: Warehouse) -> None:
    assert run_scenario(warehouse) == [
        # seen, landed, updated, deleted, unchanged, quarantined
        (6, 3, 0, 0, 0, 3),
        (6, 0, 0, 0, 3, 3),
        (1, 0, 1, 0, 0, 0),
        (2, 0, 0, 0, 2, 0),
        (2, 0, 0, 2, 0, 0),
        (6, 0, 0, 0, 3, 3),
    ]
    rows = {row[0]: row for row in current(warehouse)}
    assert rows["p1"][1] == "2" and rows["p1"][5] == "newer"
    assert rows["p2"][3]["gender"] == "male" and rows["p2"][5] == "load"
    assert rows["p3"][7] is True and rows["p3"][3] is None and rows["p3"][2] == at(5)
    assert rows["p4"][7] is True and rows["p4"][1] == "3"
    bad = quarantine(warehouse)
    assert [(r[2], r[3].split(":")[0]) for r in bad] == [
        (4, "id is missing or not a FHIR id ([A-Za-z0-9-.]{1,64})"),
        (5, "not JSON"),
        (6, "resourceType is 'Observation', expected 'Patient'"),
    ]
    assert bad[1][4] == "{not json" and all(r[6] == "load" for r in bad)


def test_scenario_gives_identical_tables_in_duckdb_and_snowflake(
    duckdb_resource: Any, fake_snowflake: Any
) -> None:
    tables = []
    for resource in (duckdb_resource, fake_snowflake):
        with resource.open_warehouse() as warehouse:
            run_scenario(warehouse)
            tables.append((current(warehouse), quarantine(warehouse)))
    assert tables[0] == tables[1]
    assert len(tables[0][0]) == 4 and len(tables[0][1]) == 3


def test_history_keeps_every_version_once_identically_in_both_warehouses(
    duckdb_resource: Any, fake_snowflake: Any
) -> None:
    tables = []
    for resource in (duckdb_resource, fake_snowflake):
        with resource.open_warehouse() as warehouse:
            run_scenario(warehouse, history=True)
            tables.append((current(warehouse, "patient_history"), current(warehouse)))
    assert tables[0] == tables[1]
    history = [(row[0], row[1], row[7], row[5]) for row in tables[0][0]]
    assert history == [
        ("p1", "1", False, "load"),
        ("p1", "2", False, "newer"),
        ("p2", "1", False, "load"),
        ("p3", "1", False, "load"),
        ("p3", None, True, "delete"),
        ("p4", "3", True, "delete"),
    ]
