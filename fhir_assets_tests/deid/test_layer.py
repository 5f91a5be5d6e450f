"""The de-identified layer over the sandbox, from ``build_defs``, in DuckDB and on the Snowflake
emulator: no source identifier left, joins kept, intervals kept, pseudonyms keyed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from fhir_assets.assets.defs import build_defs
from fhir_assets.deid.build import DEID_SCHEMA
from fhir_assets.deid.keyed import DeidKey, pseudonym, shift_days
from fhir_assets.deid.policy import default_policies
from fhir_assets.deid.scan import scan
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import sandbox_settings
from fhir_assets.warehouse.settings import DuckDBSettings, WarehouseSettings, open_warehouse

from ..snowflake_emulator import apply_bootstrap, emulator_settings

# every default view in DuckDB; two on the emulator, where each statement is slow to translate
TYPES = {
    "duckdb": "Patient,Encounter,Observation,Condition,MedicationRequest,Procedure,Immunization,"
    "AllergyIntolerance",
    "snowflake": "Patient,Observation",
}
VIEWS = {"duckdb": sorted(default_policies()), "snowflake": ["observation", "patient"]}
pytestmark = pytest.mark.timeout(900)
KEY_1, KEY_2 = "first-key-" + "a" * 30, "second-key-" + "b" * 30

Table = list[dict[str, Any]]


@dataclass
class Built:
    warehouse: WarehouseSettings
    first: dict[str, Table]
    again: dict[str, Table]
    other: dict[str, Table]
    checks: list[dg.AssetCheckEvaluation]


def read_tables(warehouse: WarehouseSettings, schema: str) -> dict[str, Table]:
    tables = {}
    with open_warehouse(warehouse, landing=False) as opened:
        for view in VIEWS[warehouse.kind]:
            table = f'{schema}."{view.upper() if opened.dialect.name == "snowflake" else view}"'
            with opened.connection.cursor() as cursor:
                cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
                names = [str(c[0]).lower() for c in cursor.description]
                rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            tables[view] = sorted(rows, key=lambda r: str(r["id"]))
    return tables


def run(warehouse: WarehouseSettings, sandbox: Sandbox, key: str, groups: list[str]) -> Any:
    types = TYPES[warehouse.kind]
    settings = sandbox_settings(
        sandbox, warehouse, FHIR_RESOURCE_TYPES=types, FHIR_PARTITIONS="none", FHIR_DEID_KEY=key
    )
    job = dg.define_asset_job("deid_test", selection=dg.AssetSelection.groups(*groups))
    defs = dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("deid_test").execute_in_process(instance=instance)
    assert result.success
    return result


@pytest.fixture(scope="module", params=["duckdb", "snowflake"])
def built(
    request: pytest.FixtureRequest, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    """Raw, views and deid with KEY_1; deid again with KEY_1; then with KEY_2 (each snapshot
    read back; the tables stay as KEY_2 made them)."""
    path = tmp_path_factory.mktemp("deid") / "wh" / "warehouse.duckdb"
    duckdb = DuckDBSettings(path=str(path))

    def build(warehouse: WarehouseSettings) -> Built:
        result = run(warehouse, sandbox, KEY_1, ["fhir_raw", "fhir_views", "fhir_deid"])
        first = read_tables(warehouse, DEID_SCHEMA)
        run(warehouse, sandbox, KEY_1, ["fhir_deid"])
        again = read_tables(warehouse, DEID_SCHEMA)
        run(warehouse, sandbox, KEY_2, ["fhir_deid"])
        other = read_tables(warehouse, DEID_SCHEMA)
        return Built(warehouse, first, again, other, result.get_asset_check_evaluations())

    if request.param == "duckdb":
        yield build(WarehouseSettings("duckdb", duckdb=duckdb))
        return
    with emulator_settings(database="FHIR_ASSETS") as snowflake:
        apply_bootstrap(snowflake)
        yield build(WarehouseSettings("snowflake", duckdb=duckdb, snowflake=snowflake))


def test_deid_layer_scan_finds_no_source_identifier(built: Built) -> None:
    deid = [c for c in built.checks if c.asset_key.path[0] == DEID_SCHEMA]
    assert sorted(c.asset_key.path[1] for c in deid) == VIEWS[built.warehouse.kind]
    assert all(c.check_name == "no_source_identifiers" and c.passed for c in deid)
    assert all(c.severity == dg.AssetCheckSeverity.ERROR for c in deid)
    assert all(c.metadata["hits"].value == 0 for c in deid)


def test_deid_layer_scan_finds_a_planted_identifier(built: Built) -> None:
    """The scan can fail: a table that keeps names, MRNs and raw ids is caught per column."""
    with open_warehouse(built.warehouse, landing=False) as opened:
        opened.fetch(
            "CREATE OR REPLACE TABLE fhir_deid.leak AS SELECT "
            '"family_name", "mrn", "id", "gender" FROM fhir.patient'
        )
        [(names, mrns, ids)] = opened.fetch(
            'SELECT COUNT("family_name"), COUNT("mrn"), COUNT("id") FROM fhir.patient'
        )
        hits = scan(opened, "leak", ["Patient"])
        opened.fetch("DROP TABLE fhir_deid.leak")
    assert names > 0 and mrns > 0
    assert hits == {"family_name": names, "mrn": mrns, "id": ids, "gender": 0}


def test_deid_layer_observations_join_one_patient_each(built: Built) -> None:
    with open_warehouse(built.warehouse, landing=False) as opened:
        [(deid_joined, unmatched, multiple)] = opened.fetch(
            'SELECT COUNT(*), COUNT_IF(n = 0), COUNT_IF(n > 1) FROM (SELECT o."id", '
            'COUNT(p."id") AS n FROM fhir_deid.observation o LEFT JOIN fhir_deid.patient p '
            'ON o."patient_id" = p."id" GROUP BY o."id") AS j'
        )
        [(joined,)] = opened.fetch(
            'SELECT COUNT(*) FROM fhir.observation o JOIN fhir.patient p ON o."patient_id" = p."id"'
        )
        [(deid_inner,)] = opened.fetch(
            "SELECT COUNT(*) FROM fhir_deid.observation o JOIN fhir_deid.patient p "
            'ON o."patient_id" = p."id"'
        )
    assert deid_joined == len(built.first["observation"]) > 0
    assert (unmatched, multiple) == (0, 0)
    assert deid_inner == joined == deid_joined


def test_deid_layer_dropped_and_kept_columns(built: Built) -> None:
    patient = built.first["patient"][0]
    assert not {"family_name", "given_name", "mrn", "birth_date_text"} & set(patient)
    assert {"id", "gender", "birth_date", "postal_code"} <= set(patient)
    zips = {row["postal_code"] for row in built.first["patient"]}
    assert all(z is None or (len(z) == 3 and z.isdigit()) for z in zips) and zips - {None}


# fakesnow's server mode hands a NULL TIMESTAMP_TZ to the connector as 1970-01-01T00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_deid_layer_epoch_values_read_back_are_nulls(built: Built) -> None:
    """What the day-difference test skips as EPOCH is NULL in the warehouse (no real date of
    1970-01-01T00:00Z in the sandbox data)."""
    original = read_tables(built.warehouse, "fhir")["observation"]
    epochs = sum(row["issued"] in (None, EPOCH) for row in original)
    with open_warehouse(built.warehouse, landing=False) as opened:
        [(nulls,)] = opened.fetch('SELECT COUNT(*) FROM fhir.observation WHERE "issued" IS NULL')
    assert epochs == nulls


def as_utc(value: Any) -> datetime:
    """A date or timestamp as a datetime (shifted and original have the same type)."""
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)


def test_deid_layer_day_differences_within_a_patient_are_kept(
    built: Built, sandbox: Sandbox
) -> None:
    """Every shifted date of a patient moved by that patient's shift, so any two of them are
    as many days apart as before; the shift is the one the key gives."""
    dialect = built.warehouse.kind
    key = DeidKey.from_secret(KEY_1)
    original = read_tables(built.warehouse, "fhir")
    moves: dict[str, set[timedelta]] = defaultdict(set)
    where: dict[tuple[str, str, bool], int] = defaultdict(int)  # for the failure message
    policies = default_policies()
    today = date.today()
    # 90 years back, as the SQL's interval arithmetic does: 29 February becomes the 28th
    cutoff = today.replace(year=today.year - 90, day=min(today.day, 28 if today.month == 2 else 31))
    for view, rows in original.items():
        deid = {row["id"]: row for row in built.first[view]}
        dated = {c: kind for c, kind in policies[view].items() if kind in ("date", "birthdate")}
        for row in rows:
            patient = row["id"] if view == "patient" else row["patient_id"]
            twin = deid[pseudonym(key, row["id"], dialect)]
            for column, kind in dated.items():
                if row[column] in (None, EPOCH) or (kind == "birthdate" and row[column] <= cutoff):
                    continue
                moved = as_utc(twin[column]) - as_utc(row[column])
                moves[pseudonym(key, patient, dialect)].add(moved)
                where[(view, column, moved == timedelta(0))] += 1
    assert len(moves) > 10
    for patient, moved in moves.items():
        assert moved == {timedelta(days=shift_days(key, patient, dialect))}, dict(where)


def test_deid_layer_same_key_same_tables_new_key_new_pseudonyms(built: Built) -> None:
    assert built.again == built.first
    policies = default_policies()
    for view in VIEWS[built.warehouse.kind]:
        for column in (c for c, kind in policies[view].items() if kind == "hash"):
            first = {row[column] for row in built.first[view]} - {None}
            other = {row[column] for row in built.other[view]} - {None}
            assert len(first) == len(other)
            assert not first & other, (view, column)
