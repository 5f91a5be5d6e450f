"""The default views' column names work unquoted in both warehouses."""

from __future__ import annotations

import duckdb
import pytest

from fhir_assets.views.library import load_views

# Snowflake's reserved keywords (docs.snowflake.com, "Reserved & limited keywords")
SNOWFLAKE_RESERVED = {
    "account", "all", "alter", "and", "any", "as", "between", "by", "case", "cast", "check",
    "column", "connect", "connection", "constraint", "create", "cross", "current",
    "current_date", "current_time", "current_timestamp", "current_user", "database", "delete",
    "distinct", "drop", "else", "end", "exists", "false", "following", "for", "from", "full",
    "grant", "group", "gscluster", "having", "ilike", "in", "increment", "inner", "insert",
    "intersect", "into", "is", "issue", "join", "lateral", "left", "like", "localtime",
    "localtimestamp", "minus", "natural", "not", "null", "of", "on", "or", "order", "organization",
    "qualify", "regexp", "revoke", "right", "rlike", "row", "rows", "sample", "schema", "select",
    "set", "some", "start", "table", "tablesample", "then", "to", "trigger", "true", "try_cast",
    "union", "unique", "update", "using", "values", "view", "when", "whenever", "where", "with",
}  # fmt: skip


def duckdb_reserved() -> set[str]:
    rows = duckdb.sql(
        "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
    ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("view", load_views(), ids=lambda view: view.name)
def test_default_view_columns_are_not_reserved_words(view) -> None:  # type: ignore[no-untyped-def]
    reserved = duckdb_reserved() | SNOWFLAKE_RESERVED
    names = {column.name for column in view.columns}
    assert not names & reserved


def test_encounter_period_columns_renamed() -> None:
    encounter = next(view for view in load_views() if view.name == "encounter")
    names = [column.name for column in encounter.columns]
    assert "period_start" in names and "period_end" in names
    # unquoted, as a user writes it
    con = duckdb.connect()
    con.execute("CREATE TABLE encounter (period_start VARCHAR, period_end VARCHAR)")
    assert con.execute("SELECT period_start, period_end FROM encounter").fetchall() == []
