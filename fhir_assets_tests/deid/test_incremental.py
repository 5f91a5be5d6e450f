"""Incremental de-identified builds equal full ones: over random change sets landed by the real
landing code (inserts, updates, deletes, forEach rows growing and shrinking, the raw table
landing ahead of the view), on DuckDB and the Snowflake emulator; a new key or policy rebuilds
in full; the table holds no raw server URL or resource id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_assets.deid.build import DEID_SCHEMA, ROW_KEY, DeidContext, deid_select
from fhir_assets.deid.incremental import DeidState, build_deid, key_fingerprint
from fhir_assets.deid.keyed import DeidKey, pseudonym
from fhir_assets.deid.policy import ViewPolicy, resolve
from fhir_assets.views import parse_view
from fhir_assets.views.incremental import BuildState, build_view
from fhir_assets.warehouse.duckdb import DuckDBWarehouse
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance, Warehouse
from fhir_assets_tests.snowflake_emulator import patched_warehouse

from ..views.test_incremental import IDS, SERVERS, START, entries, names

KEY_1, KEY_2 = "first-key-" + "a" * 30, "second-key-" + "b" * 30
TODAY = date(2026, 12, 7)
VIEW = parse_view(
    {
        "name": "deid_names",
        "resource": "Patient",
        "where": [{"path": "active = true"}],
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()"},
                    {"name": "last_updated", "path": "meta.lastUpdated", "type": "instant"},
                ]
            },
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
METHODS = {"id": "hash", "last_updated": "date", "family": "keep", "given": "hash"}
POLICY = resolve(VIEW, METHODS, {})

op = st.tuples(
    st.sampled_from(SERVERS), st.sampled_from(IDS), st.none() | st.tuples(names, st.booleans())
)
# per batch: its ops, whether the view is built after it, whether the deid table is (a deid
# build without a view build sees the raw table ahead of the view)
batches = st.lists(
    st.tuples(
        st.lists(op, max_size=6, unique_by=lambda o: (o[0], o[1])), st.booleans(), st.booleans()
    ),
    min_size=1,
    max_size=6,
)


def name(warehouse: Warehouse, schema: str) -> str:
    if warehouse.dialect.name == "snowflake":
        return f'"{schema.upper()}"."{VIEW.name.upper()}"'
    return f"{schema}.{VIEW.name}"


def rows(warehouse: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    return sorted(warehouse.fetch(sql), key=repr)


def full_rows(warehouse: Warehouse, key: str, policy: ViewPolicy = POLICY) -> list[Any]:
    """What a full build over the view table as it is now would hold."""
    ctx = DeidContext(DeidKey.from_secret(key), warehouse.dialect, TODAY)
    return rows(warehouse, deid_select(policy, ctx, keyed=True))


def table_rows(warehouse: Warehouse) -> list[Any]:
    return rows(warehouse, f"SELECT * FROM {name(warehouse, DEID_SCHEMA)}")  # noqa: S608


def replay(warehouse: Warehouse, changes: list[Any]) -> list[str]:
    """Land each batch; build the view and the deid table where the batch says so; check the
    deid table == a full build over the view each time it is built."""
    key = DeidKey.from_secret(KEY_1)
    view: BuildState | None = None
    deid: DeidState | None = None
    modes = []
    land(warehouse, "Patient", [], Provenance(SERVERS[0], "empty", START))  # the raw table
    view = build_view(warehouse, VIEW).state
    for n, (ops, build_v, build_d) in enumerate(changes):
        when = START + timedelta(hours=n + 1)
        for server, items in entries(ops, when).items():
            if items:
                land(warehouse, "Patient", items, Provenance(server, f"s{n}", when))
        if build_v:
            view = build_view(warehouse, VIEW, view).state
        if build_d or n == len(changes) - 1:
            result = build_deid(warehouse, POLICY, key, TODAY, view, deid)
            expected = "incremental" if deid and deid.watermark else "full"
            assert result.mode == expected, result
            deid, modes = result.state, [*modes, result.mode]
            assert table_rows(warehouse) == full_rows(warehouse, KEY_1), (n, result)
    return modes


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=batches)
def test_incremental_deid_build_equals_full_build_duckdb(changes: list[Any]) -> None:
    with duckdb.connect() as connection:
        modes = replay(DuckDBWarehouse(connection), changes)
    assert modes[0] == "full"


@pytest.fixture
def emulator() -> Iterator[Warehouse]:
    with patched_warehouse() as warehouse:
        yield warehouse


def test_incremental_deid_build_equals_full_build_on_the_emulator(emulator: Warehouse) -> None:
    a, b = SERVERS
    grow = ([{"family": "Ng", "given": ["A"]}] * 3, True)
    changes = [
        ([(a, "p1", ([{"family": "Ng"}], True)), (b, "p1", ([], True)), (a, "p2", grow)], 1, 1),
        ([(a, "p1", grow), (a, "p3", ([{"family": "Roe"}], True))], 1, 1),  # grows, inserted
        ([(a, "p2", ([{"family": "Ode"}], True)), (b, "p1", None)], 0, 1),  # raw ahead of view
        ([(a, "p3", ([{"family": "Roe"}], False))], 1, 1),  # no longer passes `where`
    ]
    assert replay(emulator, changes) == ["full", "incremental", "incremental", "incremental"]


def landed(connection: duckdb.DuckDBPyConnection, *ops: Any, hour: int = 1) -> Warehouse:
    warehouse = DuckDBWarehouse(connection)
    when = START + timedelta(hours=hour)
    for server, items in entries(list(ops), when).items():
        land(warehouse, "Patient", items, Provenance(server, f"s{hour}", when))
    return warehouse


def test_a_new_key_policy_or_view_rebuilds_in_full() -> None:
    one = (SERVERS[0], "p1", ([{"family": "Ng", "given": ["A"]}], True))
    with duckdb.connect() as connection:
        warehouse = landed(connection, one)
        view = build_view(warehouse, VIEW).state
        key_1, key_2 = DeidKey.from_secret(KEY_1), DeidKey.from_secret(KEY_2)
        first = build_deid(warehouse, POLICY, key_1, TODAY, view)
        assert (first.mode, first.reason, first.rows) == ("full", "no watermark", 1)
        assert build_deid(warehouse, POLICY, key_1, TODAY, view, first.state).mode == "incremental"

        other = build_deid(warehouse, POLICY, key_2, TODAY, view, first.state)
        assert (other.mode, other.reason) == ("full", "key changed")
        assert table_rows(warehouse) == full_rows(warehouse, KEY_2) != full_rows(warehouse, KEY_1)

        dropped = resolve(VIEW, {**METHODS, "given": "drop"}, {})
        changed = build_deid(warehouse, dropped, key_2, TODAY, view, other.state)
        assert (changed.mode, changed.reason) == ("full", "policy or view changed")
        assert table_rows(warehouse) == full_rows(warehouse, KEY_2, dropped)

        stale = BuildState("another view query", view.watermark)
        again = build_deid(warehouse, dropped, key_2, TODAY, stale, changed.state)
        assert (again.mode, again.reason) == ("full", "policy or view changed")
        unknown = build_deid(warehouse, dropped, key_2, TODAY, None, again.state)
        assert (unknown.mode, unknown.reason) == ("full", "no watermark")


def test_the_state_and_table_hold_no_key_server_or_resource_id() -> None:
    """The metadata holds a fingerprint that differs per key but is no pseudonym; the table's
    row key is a pseudonym, not the server URL or the id."""
    server = SERVERS[1]
    with duckdb.connect() as connection:
        warehouse = landed(connection, (server, "p1", ([{"family": "Ng"}], True)))
        view = build_view(warehouse, VIEW).state
        key = DeidKey.from_secret(KEY_1)
        state = build_deid(warehouse, POLICY, key, TODAY, view).state
        text = repr(state)
        [(row_key, rid)] = warehouse.fetch(
            f'SELECT "{ROW_KEY}", "id" FROM {name(warehouse, DEID_SCHEMA)}'  # noqa: S608
        )
    assert KEY_1 not in text and key.ipad.hex() not in text and key.opad.hex() not in text
    assert state.key_fingerprint != key_fingerprint(DeidKey.from_secret(KEY_2))
    assert state.key_fingerprint not in {pseudonym(key, "p1"), pseudonym(key, server)}
    assert row_key == pseudonym(key, f"{len(server)}:{server}/p1")
    assert server not in row_key and rid == pseudonym(key, "p1") != row_key


def test_the_asset_builds_incrementally_from_its_and_the_views_metadata(tmp_path: Any) -> None:
    """Through Dagster: the deid asset reads the view's watermark and its own state from the
    instance; a second build after a landing is incremental, a new key rebuilds in full."""
    import dagster as dg

    from fhir_assets.assets.deid import HASH, KEY_FP, DeidKeyResource, build_deid_asset
    from fhir_assets.assets.views import build_view_asset
    from fhir_assets.warehouse.resources import DuckDBWarehouseResource

    path = str(tmp_path / "warehouse.duckdb")
    assets = [build_view_asset(VIEW), build_deid_asset(POLICY, ("Patient",), today=lambda: TODAY)]
    instance = dg.DagsterInstance.ephemeral()

    def step(hour: int, secret: str, *ops: Any) -> dict[str, Any]:
        with duckdb.connect(path) as connection:
            landed(connection, *ops, hour=hour)
        resources = {
            "landing": DuckDBWarehouseResource(database=path),
            "deid": DeidKeyResource(key=secret),
        }
        result = dg.materialize(assets, resources=resources, instance=instance)
        [event] = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key.path[0] == "fhir_deid"
        ]
        with duckdb.connect(path) as connection:
            warehouse = DuckDBWarehouse(connection)
            assert table_rows(warehouse) == full_rows(warehouse, secret)
        # the test policy keeps names, which the scan finds; the row key and ids pass
        [check] = result.get_asset_check_evaluations()
        assert check.metadata["columns_with_hits"].value == "family"
        metadata = event.step_materialization_data.materialization.metadata
        return {name: value.value for name, value in metadata.items()}

    a, b = SERVERS
    first = step(1, KEY_1, (a, "p1", ([{"family": "Ng"}], True)), (b, "p1", ([], True)))
    again = step(2, KEY_1, (a, "p1", None), (a, "p2", ([{"family": "Roe"}] * 2, True)))
    other = step(3, KEY_2, (b, "p1", ([{"family": "Ode"}], True)))
    assert (first["build"], again["build"], other["build"]) == ("full", "incremental", "full")
    assert (again["resources_recomputed"], other["full_build_reason"]) == (2, "key changed")
    assert first[HASH] == other[HASH] and first[KEY_FP] != other[KEY_FP]
    text = repr([first, again, other])
    for secret in (KEY_1, KEY_2):
        key = DeidKey.from_secret(secret)
        assert secret not in text and key.ipad.hex() not in text and key.opad.hex() not in text
