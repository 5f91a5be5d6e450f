"""DuckDB's merge landing keeps a JSON line's text in its Arrow batch until the line's group is
applied, and reads back only the lines that change the table (issue #26). The line a changed
row comes from is named by (batch, position): positions repeat in every batch, ids repeat
across batches of a group and across groups, and some rows (tombstones) carry no line at all.
Whatever the batch and group sizes, the table and the counts come out the same, with or
without history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from fhir_assets.warehouse.duckdb import DuckDBWarehouse
from fhir_assets.warehouse.duckdb_landing import GROUPS_PER_COMMIT
from fhir_assets.warehouse.landing import LandingOptions, land
from fhir_assets.warehouse.protocol import Provenance

from .helpers import SERVER, at, current, lines, patient

DAY1, DAY2 = "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"
DELETE_P4 = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [{"request": {"method": "DELETE", "url": "Patient/p4"}}],
}
SECOND = [
    patient("p1", "2", DAY2, text="p1 v2"),
    patient("p2", "1", DAY1, text="p2 v1 again, other text"),  # equal version: stays
    patient("p3", "2", DAY2, text="p3 v2"),
    patient("p1", "3", DAY2, text="p1 v3"),  # the same id later in the group: wins
    patient("p6", "1", DAY1, text="p6 new"),
    DELETE_P4,  # refused by the SQL checks, a tombstone after Python's
    patient("p5", "1", DAY1, text="p5 v1 again"),
    patient("p3", "2", DAY2, text="p3 v2, other text"),  # equal to the row just landed
    *(patient(f"q{n}", "1", DAY1, text=f"q{n}") for n in range(12)),  # groups past a commit
]


def relanded(path: Path, batch_rows: int, commit_rows: int, *, history: bool) -> Any:
    with duckdb.connect(str(path)) as connection:
        warehouse = DuckDBWarehouse(connection, commit_rows=commit_rows)
        seed = lines(*(patient(f"p{n}", "1", DAY1, text=f"p{n} v1") for n in range(6)))
        options = LandingOptions(batch_rows=batch_rows, history=history)
        land(warehouse, "Patient", seed, Provenance(SERVER, "s1", at(1)), options)
        result = land(
            warehouse, "Patient", lines(*SECOND), Provenance(SERVER, "s2", at(2)), options
        )
        table = [(row[0], row[1], row[3] and row[3]["text"], row[7]) for row in current(warehouse)]
        return result, table


@pytest.mark.parametrize("history", [False, True])
@pytest.mark.parametrize(
    ("batch_rows", "commit_rows", "updated"), [(1, 1, 3), (2, 4, 2), (3, 2, 3), (100, 1000, 2)]
)
def test_merge_landing_inserts_the_changed_lines_whatever_the_groups(
    tmp_path: Path, batch_rows: int, commit_rows: int, updated: int, history: bool
) -> None:
    """``updated``: p1 v2 and p1 v3 in one group count one update, in two groups two."""
    assert len(SECOND) > GROUPS_PER_COMMIT  # with one row per group, commits happen mid-way
    result, table = relanded(tmp_path / "w.duckdb", batch_rows, commit_rows, history=history)

    assert (result.seen, result.landed, result.updated, result.deleted) == (20, 13, updated, 1)
    assert (result.unchanged, result.quarantined) == (6 - updated, 0)
    assert table[:7] == [
        ("p0", "1", "p0 v1", False),
        ("p1", "3", "p1 v3", False),
        ("p2", "1", "p2 v1", False),
        ("p3", "2", "p3 v2", False),
        ("p4", None, None, True),
        ("p5", "1", "p5 v1", False),
        ("p6", "1", "p6 new", False),
    ]
    assert table[7:] == [(f"q{n}", "1", f"q{n}", False) for n in sorted(range(12), key=str)]
