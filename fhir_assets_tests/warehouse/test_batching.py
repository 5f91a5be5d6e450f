"""Batch and transaction bounds of the landing path (memory and DuckDB commit groups)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from fhir_assets.warehouse.batches import Entry, build_batches
from fhir_assets.warehouse.duckdb import DuckDBWarehouse
from fhir_assets.warehouse.landing import LandingOptions, land
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

from .helpers import SERVER, at, current, lines, patient


def test_build_batches_ends_a_batch_at_max_bytes() -> None:
    entries = lines(*(patient(f"p{n}", "1", "2025-01-01T00:00:00Z", x="y" * 100) for n in range(9)))
    size = len(entries[0][2].rstrip(b"\n"))  # type: ignore[union-attr]

    batches = list(build_batches(entries, "Patient", rows=100, max_bytes=3 * size))

    assert [b.lines.num_rows for b in batches] == [3, 3, 3]
    assert [b.entries for b in batches] == [3, 3, 3]


def failing() -> Iterator[Entry]:
    yield from lines(*(patient(f"p{n}", "1", "2025-01-01T00:00:00Z") for n in range(3)))
    raise OSError("disk gone")


def test_duckdb_first_landing_is_all_or_nothing(duckdb_resource: DuckDBWarehouseResource) -> None:
    """Into a table without rows of this server DuckDB appends in one transaction."""
    with duckdb_resource.open_warehouse() as warehouse:
        with pytest.raises(OSError, match="disk gone"):
            land(warehouse, "Patient", failing(), Provenance(SERVER, "s", at(1)),
                 LandingOptions(batch_rows=1))  # fmt: skip
    with duckdb_resource.open_warehouse() as warehouse:
        assert current(warehouse) == []


def test_duckdb_merge_landing_keeps_merged_batches_when_the_input_fails(
    duckdb_resource: DuckDBWarehouseResource,
) -> None:
    first = lines(patient("p9", "1", "2025-01-01T00:00:00Z"))
    with duckdb_resource.open_warehouse() as warehouse:
        land(warehouse, "Patient", first, Provenance(SERVER, "s", at(1)))
        with pytest.raises(OSError, match="disk gone"):
            land(warehouse, "Patient", failing(), Provenance(SERVER, "s", at(2)),
                 LandingOptions(batch_rows=1))  # fmt: skip
    with duckdb_resource.open_warehouse() as warehouse:  # committed, seen from a new connection
        assert [row[0] for row in current(warehouse)] == ["p0", "p1", "p2", "p9"]


def test_duckdb_landing_counts_the_same_whatever_the_commit_group(tmp_path: Path) -> None:
    """Several commit groups in one landing (a group per batch here) count and land alike."""
    entries = lines(
        patient("p1", "1", "2025-01-01T00:00:00Z"),
        patient("p2", "1", "2025-01-01T00:00:00Z"),
        patient("p1", "2", "2025-01-02T00:00:00Z"),
        patient("p3", "1", "2025-01-01T00:00:00Z"),
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        warehouse = DuckDBWarehouse(connection, commit_rows=2)
        seed = lines(patient("p0", "1", "2025-01-01T00:00:00Z"))
        land(warehouse, "Patient", seed, Provenance(SERVER, "s", at(1)))  # merge mode from now
        result = land(
            warehouse,
            "Patient",
            entries,
            Provenance(SERVER, "s", at(1)),
            LandingOptions(batch_rows=2),
        )
        rows = current(warehouse)

    assert (result.landed, result.updated, result.unchanged) == (3, 1, 0)
    assert [(row[0], row[1]) for row in rows] == [
        ("p0", "1"),
        ("p1", "2"),
        ("p2", "1"),
        ("p3", "1"),
    ]
