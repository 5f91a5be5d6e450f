"""The table metadata the Dagster UI shows for our tables: row count, name, column schema."""

from __future__ import annotations

from typing import Any

import dagster as dg

from ..warehouse.protocol import Warehouse
from ..warehouse.sql import quoted


def table_metadata(warehouse: Warehouse, schema: str, table: str) -> dict[str, Any]:
    """``dagster/row_count``, ``dagster/table_name`` (database.schema.table) and
    ``dagster/column_schema`` of a table, read from the warehouse itself.

    Names come from the catalog or a validated view name, never from input. Snowflake stores
    unquoted names in upper case, hence the case-insensitive lookup and lower-cased output.
    """
    # quoted: a view may be named after an SQL keyword ("order")
    name = quoted(warehouse.dialect, schema, table)
    [(rows,)] = warehouse.fetch(f"SELECT COUNT(*) FROM {name}")  # noqa: S608
    [(database,)] = warehouse.fetch("SELECT CURRENT_DATABASE()")
    columns = warehouse.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "  # noqa: S608
        f"WHERE UPPER(table_schema) = '{schema.upper()}' AND UPPER(table_name) = "
        f"'{table.upper()}' ORDER BY ordinal_position"
    )
    return {
        "dagster/row_count": int(rows),
        "dagster/table_name": f"{str(database).lower()}.{schema}.{table}",
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(str(name).lower(), str(kind).lower()) for name, kind in columns]
        ),
    }
