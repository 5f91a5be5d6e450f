"""Incremental view builds equal full builds: over random change sets landed by the real landing
code (inserts, updates, deletes, forEach rows growing and shrinking), on DuckDB and fakesnow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_assets.views import compile_view, parse_view
from fhir_assets.views.incremental import BuildState, build_view
from fhir_assets.warehouse.duckdb import DuckDBWarehouse
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance, Warehouse
from fhir_assets_tests.snowflake_emulator import patched_warehouse

SERVERS = ("https://a.example.org/fhir", "https://b.example.org/fhir")
IDS = ("p1", "p2", "p3", "p4")
START = datetime(2025, 1, 1, tzinfo=UTC)
VIEW = parse_view(
    {
        "name": "patient_names",
        "resource": "Patient",
        "where": [{"path": "active = true"}],
        "select": [
            {"column": [{"name": "id", "path": "getResourceKey()"}]},
            {
                "forEach": "name",
                "column": [
                    {"name": "family", "path": "family"},
                    {"name": "given", "path": "given.join(' ')"},
                ],
            },
        ],
    }
)

names = st.lists(
    st.fixed_dictionaries(
        {"family": st.sampled_from(["Ng", "Ode", "Roe"]), "given": st.lists(st.just("A"))}
    ),
    max_size=3,
)
# one op per (server, id) and batch: a resource (its names, whether active) or None (deleted)
op = st.tuples(
    st.sampled_from(SERVERS), st.sampled_from(IDS), st.none() | st.tuples(names, st.booleans())
)
batches = st.lists(
    st.tuples(st.lists(op, max_size=6, unique_by=lambda o: (o[0], o[1])), st.booleans()),
    min_size=1,
    max_size=6,
)


def entries(ops: list[Any], when: datetime) -> dict[str, list[tuple[str, int, bytes]]]:
    """NDJSON entries per server: resources, and one deletion Bundle of the deleted ids."""
    lines: dict[str, list[tuple[str, int, bytes]]] = {server: [] for server in SERVERS}
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    deleted: dict[str, list[Any]] = {server: [] for server in SERVERS}
    for server, pid, body in ops:
        if body is None:
            deleted[server].append({"request": {"method": "DELETE", "url": f"Patient/{pid}"}})
            continue
        resource = {"resourceType": "Patient", "id": pid, "meta": {"lastUpdated": stamp},
                    "active": body[1], "name": body[0]}  # fmt: skip
        lines[server].append(("p.ndjson", len(lines[server]) + 1, orjson.dumps(resource)))
    for server, items in deleted.items():
        if items:
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": items}
            lines[server].append(("d.ndjson", 1, orjson.dumps(bundle)))
    return lines


def full_rows(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    sql = compile_view(VIEW, warehouse.dialect.name, keyed=True).sql
    return sorted(warehouse.fetch(sql), key=repr)


def table_rows(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    name = (
        '"FHIR"."PATIENT_NAMES"' if warehouse.dialect.name == "snowflake" else "fhir.patient_names"
    )
    return sorted(warehouse.fetch(f"SELECT * FROM {name}"), key=repr)


def replay(warehouse: Warehouse, changes: list[Any]) -> list[str]:
    """Land each batch, build incrementally where the batch says so; check == full each time."""
    state: BuildState | None = None
    modes = []
    land(warehouse, "Patient", [], Provenance(SERVERS[0], "empty", START))  # the raw table
    for n, (ops, build) in enumerate(changes):
        when = START + timedelta(hours=n)
        for server, items in entries(ops, when).items():
            if items:
                land(warehouse, "Patient", items, Provenance(server, f"s{n}", when))
        if build or n == len(changes) - 1:
            result = build_view(warehouse, VIEW, state)
            # incremental whenever a previous build saw a landed row
            expected = "incremental" if state and state.watermark else "full"
            assert result.mode == expected
            state, modes = result.state, [*modes, result.mode]
            assert table_rows(warehouse) == full_rows(warehouse), (n, result)
    return modes


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=batches)
def test_incremental_build_equals_full_build_duckdb(changes: list[Any]) -> None:
    with duckdb.connect() as connection:
        modes = replay(DuckDBWarehouse(connection), changes)
    assert modes[0] == "full"


@pytest.fixture
def emulator() -> Iterator[Warehouse]:
    with patched_warehouse() as warehouse:
        yield warehouse


def test_incremental_build_equals_full_build_on_the_emulator(emulator: Warehouse) -> None:
    a, b = SERVERS
    grow = ([{"family": "Ng", "given": ["A"]}] * 3, True)
    changes = [
        ([(a, "p1", ([{"family": "Ng"}], True)), (b, "p1", ([], True)), (a, "p2", grow)], True),
        ([(a, "p1", grow), (a, "p3", ([{"family": "Roe"}], True))], True),  # grows, inserted
        ([(a, "p2", ([{"family": "Ode"}], True)), (b, "p1", None)], False),  # shrinks, deleted
        ([(a, "p3", ([{"family": "Roe"}], False))], True),  # no longer passes `where`
    ]
    assert replay(emulator, changes) == ["full", "incremental", "incremental"]


def test_a_changed_view_or_missing_watermark_rebuilds_in_full() -> None:
    with duckdb.connect() as connection:
        warehouse = DuckDBWarehouse(connection)
        ops = [(SERVERS[0], "p1", ([{"family": "Ng"}], True))]
        land(
            warehouse,
            "Patient",
            entries(ops, START)[SERVERS[0]],
            Provenance(SERVERS[0], "s", START),
        )
        first = build_view(warehouse, VIEW)
        assert (first.mode, first.rows) == ("full", 1)
        assert build_view(warehouse, VIEW, first.state).mode == "incremental"
        stale = BuildState("another definition", first.state.watermark)
        assert build_view(warehouse, VIEW, stale).mode == "full"
        assert build_view(warehouse, VIEW, BuildState(first.state.view_hash, None)).mode == "full"
        connection.execute("DROP TABLE fhir.patient_names")
        assert build_view(warehouse, VIEW, first.state).rows == 1  # table gone: full again


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake"])
def test_the_view_compiled_once_reads_the_table_it_is_pointed_at(dialect: str) -> None:
    from fhir_assets.views.incremental import SOURCE, over
    from fhir_assets.views.library import load_views

    for view in [VIEW, *load_views(None, {"Patient", "Observation", "Encounter", "Condition"})]:
        once = compile_view(view, dialect, table=SOURCE, keyed=True).sql
        assert over(once, "t") == compile_view(view, dialect, table="t", keyed=True).sql
