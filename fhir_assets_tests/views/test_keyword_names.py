"""A view named after an SQL keyword (``order``) materializes in both warehouses.

DuckDB and the emulator accept ``fhir.order``; Snowflake reserves ORDER (an unquoted reserved
word is a syntax error there), so the statements sent are also checked for the quoted name.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest

from fhir_assets.assets.tables import table_metadata
from fhir_assets.views import parse_view
from fhir_assets.views.runner import materialize
from fhir_assets.warehouse import sql
from fhir_assets.warehouse.duckdb import DuckDBWarehouse
from fhir_assets.warehouse.kind_snowflake import DIALECT as SNOWFLAKE
from fhir_assets.warehouse.snowflake import SnowflakeWarehouse

from .conformance import fakesnow_views

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output:UserWarning")
VIEW = parse_view(
    {
        "resourceType": "ViewDefinition",
        "name": "order",
        "resource": "Patient",
        "select": [{"column": [{"name": "id", "path": "id"}, {"name": "end", "path": "gender"}]}],
    }
)


class Recording(SnowflakeWarehouse):
    """The emulator's warehouse, keeping every statement it is sent."""

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.sent: list[str] = []

    def fetch(self, query: str) -> list[tuple[Any, ...]]:
        self.sent.append(query)
        return super().fetch(query)


PATIENTS = [{"resourceType": "Patient", "id": "a", "gender": "female"}, {"id": "b"}]


def test_keyword_view_name_materializes_on_duckdb() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA fhir_raw")
    con.execute("CREATE TABLE fhir_raw.patient (resource JSON, deleted BOOLEAN)")
    for item in PATIENTS:
        con.execute("INSERT INTO fhir_raw.patient VALUES (?, FALSE)", [json.dumps(item)])
    warehouse = DuckDBWarehouse(con)
    assert materialize(warehouse, VIEW) == 2
    rows = con.execute('SELECT id, "end" FROM fhir."order" ORDER BY id').fetchall()
    assert rows == [("a", "female"), ("b", None)]
    assert table_metadata(warehouse, "fhir", "order")["dagster/row_count"] == 2


def test_keyword_view_name_materializes_on_snowflake() -> None:
    with fakesnow_views() as connection:
        cursor: Any = connection.cursor()
        cursor.execute("CREATE TABLE fhir_raw.patient (resource VARIANT, deleted BOOLEAN)")
        for item in PATIENTS:
            cursor.execute(
                "INSERT INTO fhir_raw.patient SELECT PARSE_JSON(%s), FALSE", (json.dumps(item),)
            )
        warehouse = Recording(connection)
        assert materialize(warehouse, VIEW) == 2
        named = [q for q in warehouse.sent if "order" in q.lower().split(" as ")[0]]
        assert named and all('"FHIR"."ORDER"' in q for q in named), named
        cursor.execute('SELECT COUNT(*) FROM fhir."ORDER"')
        assert cursor.fetchone() == (2,)
        assert table_metadata(warehouse, "fhir", "order")["dagster/row_count"] == 2


def test_quoted_names_are_checked_then_quoted_in_the_warehouse_case() -> None:
    assert sql.quoted(sql.DUCKDB, "fhir", "order") == '"fhir"."order"'
    assert sql.quoted(SNOWFLAKE, "fhir.order") == '"FHIR"."ORDER"'
    with pytest.raises(sql.UnsafeIdentifierError):
        sql.quoted(sql.DUCKDB, "fhir", 'order"; DROP TABLE fhir_raw.patient; --')
