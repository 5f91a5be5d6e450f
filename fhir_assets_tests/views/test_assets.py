"""View assets: sandbox -> raw assets -> view tables in one DuckDB file, checked against JSON."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fhir_assets.assets.raw import build_raw_assets
from fhir_assets.assets.views import build_view_assets
from fhir_assets.catalog import select
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.views.library import load_views
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

TYPES = (
    "Patient,Encounter,Observation,Condition,MedicationRequest,Procedure,Immunization,"
    "AllergyIntolerance"
)

# The observation view's values, written by hand against the raw JSON.
OBSERVATION_BY_HAND = """
SELECT resource->>'$.id', resource->>'$.status', resource->>'$.code.coding[0].code',
  CAST(resource->'$.valueQuantity.value' AS DOUBLE), resource->>'$.valueQuantity.unit',
  resource->>'$.effectiveDateTime',
  regexp_extract(resource->>'$.subject.reference', 'Patient/(.+)$', 1)
FROM fhir_raw.observation
"""
OBSERVATION_VIEW = """
SELECT id, status, code_code, value_quantity, value_unit, effective_at_text, patient_id
FROM fhir.observation
"""


@pytest.fixture(scope="module")
def warehouse(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw assets and then the default views materialized from the shared sandbox."""
    path = tmp_path_factory.mktemp("views") / "warehouse.duckdb"
    catalog = select(TYPES)
    views = load_views(None, {spec.resource_type for spec in catalog})
    fhir = FhirServerResource(
        base_url=sandbox.base_url,
        client_id=sandbox.client.client_id,
        private_key_path=str(sandbox.client.private_key_path),
        scopes="system/*.read",
    )
    result = dg.materialize(
        [*build_raw_assets(catalog), *build_view_assets(views)],
        resources={
            "fhir": fhir,
            "landing": DuckDBWarehouseResource(database=str(path)),
        },
    )
    assert result.success
    return path


@pytest.mark.parametrize(
    ("view", "table"),
    [
        ("patient", "patient"),
        ("encounter", "encounter"),
        ("observation", "observation"),
        ("condition", "condition"),
        ("medication_request", "medicationrequest"),
        ("procedure", "procedure"),
        ("immunization", "immunization"),
        ("allergy_intolerance", "allergyintolerance"),
    ],
)
def test_view_has_one_row_per_raw_resource(warehouse: Path, view: str, table: str) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        raw = con.execute(f"SELECT count(*) FROM fhir_raw.{table}").fetchone()
        flat = con.execute(f'SELECT count(*) FROM fhir."{view}"').fetchone()
    assert raw is not None and flat is not None
    assert raw[0] > 0
    assert flat[0] == raw[0]


def test_observation_view_values_match_hand_written_json_query(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = sorted(con.execute(OBSERVATION_BY_HAND).fetchall(), key=str)
        actual = sorted(con.execute(OBSERVATION_VIEW).fetchall(), key=str)
    assert any(row[3] is not None for row in actual)  # some quantities, not all NULL
    assert actual == expected


def test_patient_view_columns_typed(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        types = {row[0]: row[1] for row in con.execute("DESCRIBE fhir.patient").fetchall()}
        rows = con.execute("SELECT id, birth_date FROM fhir.patient WHERE birth_date IS NOT NULL")
        assert rows.fetchall()
    assert {k: types[k] for k in ("id", "active", "family_name", "birth_date_text")} == {
        "id": "VARCHAR",
        "active": "BOOLEAN",
        "family_name": "VARCHAR",
        "birth_date_text": "VARCHAR",
    }
    assert types["birth_date"] == "DATE"
    assert types["deceased_at"] == types["last_updated"] == "TIMESTAMP WITH TIME ZONE"


def test_default_views_date_columns_are_not_varchar(warehouse: Path) -> None:
    """After landing and the views, every typed date/dateTime column is DATE or TIMESTAMP, and
    each holds the same moment as its ``_text`` companion (complete values in the demo data)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'fhir'"
        ).fetchall()
        names = {(t, c) for t, c, _ in columns}
        typed = [(t, c, k) for t, c, k in columns if (t, f"{c}_text") in names]
        assert len(typed) >= 14
        for table, column, kind in typed:
            assert kind in ("DATE", "TIMESTAMP WITH TIME ZONE"), (table, column, kind)
            differ = con.execute(
                f'SELECT count(*) FROM fhir."{table}" WHERE "{column}" IS DISTINCT FROM '
                f'CAST("{column}_text" AS {kind})'
            ).fetchone()
            assert differ == (0,), (table, column)


def test_definitions_register_view_assets_with_raw_deps(tmp_path: Path) -> None:
    from fhir_assets.assets.defs import build_defs
    from fhir_assets.settings import Settings

    (tmp_path / "mine.json").write_text(
        '{"name": "obs_ids", "resource": "Observation",'
        ' "select": [{"column": [{"name": "id", "path": "id"}]}]}'
    )
    environ = {"FHIR_VIEWS_DIR": str(tmp_path), "FHIR_RESOURCE_TYPES": "Patient,Observation"}
    graph = build_defs(Settings.from_environ(environ)).resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"fhir/patient", "fhir/observation", "fhir/obs_ids"} <= keys
    assert "fhir/encounter" not in keys  # Encounter is not synced, so its default view is off
    parents = graph.get(dg.AssetKey(["fhir", "obs_ids"])).parent_keys
    assert parents == {dg.AssetKey(["fhir_raw", "observation"])}
