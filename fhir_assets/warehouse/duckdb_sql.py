"""DuckDB's own landing statements (``duckdb_landing.DuckDBLanding``).

The fast checks of JSON lines in SQL (``checked_lines``), the append of a first landing
(``append_raw``, then ``delete_older_duplicates``) and the staged merge: ``changed_rows`` takes
``merge_sql.merge_raw``'s decision once, then ``delete_replaced``, ``insert_changed`` and
``insert_changed_lines`` apply it, the resources staying where they are staged.
"""

# Statements are built from identifiers checked by ``sql.identifier`` and values quoted by
# Dialect.literal, never from raw input, so string-built SQL is safe here.
# ruff: noqa: S608

from __future__ import annotations

from .merge_sql import NUMBERED, STAGE_DDL, newer, newest_first
from .sql import DUCKDB, identifier, qualified
from .validation import ID_CORE, INSTANT_CORE

# DuckDB's temporary tables of staged rows (``duckdb_landing.DuckDBLanding``): the resource as
# JSON, so that rows read from Arrow's JSON type are not parsed again, or, for a line whose text
# stays in its Arrow batch until the rows are applied, NULL with where the line is: ``batch``
# (the landing's number of the batch) and ``n`` (its position in the batch).
STAGE_JSON_DDL = (
    STAGE_DDL.replace("resource VARCHAR", "resource JSON") + ", batch INTEGER, n INTEGER"
)


def repeated_ids(source: str, *, tombstones: bool) -> str:
    """DuckDB: one row holding how many staged resources (or tombstones) of ``source`` repeat
    an id (``merge_sql.newest_staged``'s ``unique`` when none does)."""
    return (
        f"SELECT COUNT(*) - COUNT(DISTINCT id) FROM {identifier(source)} "
        f"WHERE deleted = {'TRUE' if tombstones else 'FALSE'}"
    )


def checked_lines(source: str, resource_type: str) -> str:
    """DuckDB: the JSON lines of ``source`` (``batches.LINES_SCHEMA``) as staged rows
    (``STAGE_COLUMNS``) with their position ``n`` and ``ok``: whether they pass the fast checks
    of ``validation.check``, applied to the values orjson read (no JSON is parsed here). It
    must never accept what ``check`` refuses (``test_lines.py`` holds the cases); a line that is
    not ok is checked again in Python, which says why.

    ``OFFSET 0`` keeps DuckDB from evaluating ``ok`` a second time for a ``WHERE ok`` filter on
    top of this query.
    """
    expected = DUCKDB.literal(resource_type)
    fid, instant = DUCKDB.literal(ID_CORE), DUCKDB.literal(INSTANT_CORE)
    ok = (
        f"resource_type = {expected} AND regexp_full_match(id, {fid})"
        f" AND (version_id IS NULL OR regexp_full_match(version_id, {fid}))"
        f" AND (last_updated IS NULL OR (regexp_full_match(last_updated, {instant})"
        " AND TRY_CAST(last_updated AS TIMESTAMPTZ) IS NOT NULL))"
    )
    return (
        "SELECT n, id, version_id, last_updated, text AS resource, FALSE AS deleted, "
        f"COALESCE({ok}, FALSE) AS ok FROM {identifier(source)} OFFSET 0"
    )


def append_raw(table: str, staged: str, server: str, sync_id: str, at: str) -> str:
    """DuckDB: INSERT the ok rows of ``staged`` (``checked_lines``, or staged rows with
    ``ok``) into the raw table as they are: no MERGE (see ``duckdb_landing.DuckDBLanding``)."""
    d = DUCKDB
    return (
        f"INSERT INTO {qualified(table)} SELECT id, version_id, "
        f"{d.to_timestamp('last_updated')}, resource, {d.literal(server)}, {d.literal(sync_id)}, "
        f"{d.to_timestamp(d.literal(at))}, deleted FROM ({staged}) WHERE ok"
    )


def stage_ok(staging: str, staged: str, batch: int | None = None) -> str:
    """DuckDB: INSERT the ok rows of ``staged`` (``checked_lines``) into the staging table
    (``STAGE_JSON_DDL``): with their text, or, given ``batch``, with where they are instead."""
    text = "resource, deleted, NULL, NULL" if batch is None else f"NULL, deleted, {int(batch)}, n"
    return (
        f"INSERT INTO {identifier(staging)} SELECT id, version_id, last_updated, {text} "
        f"FROM ({staged}) WHERE ok"
    )


def holds_server(table: str, server: str) -> str:
    """One row if the raw table holds any row of ``server``, else none."""
    return (
        f"SELECT 1 FROM {qualified(table)} WHERE source_server = {DUCKDB.literal(server)} LIMIT 1"
    )


def duplicates(table: str, server: str) -> str:
    """DuckDB: one row holding how many rows of ``server`` repeat an id."""
    return (
        f"SELECT COUNT(*) - COUNT(DISTINCT id) FROM {qualified(table)} "
        f"WHERE source_server = {DUCKDB.literal(server)}"
    )


def delete_older_duplicates(table: str, server: str) -> str:
    """DuckDB: keep one row per id of ``server``: the newest by the order of
    ``merge_sql.newest_staged``, the first landed among equals (as a MERGE keeps an equal
    version out)."""
    where = f"source_server = {DUCKDB.literal(server)}"
    return (
        f"DELETE FROM {qualified(table)} WHERE {where} AND rowid IN (SELECT row FROM ("
        f"SELECT rowid AS row, id, version_id, last_updated, {NUMBERED} "
        f"FROM {qualified(table)} WHERE {where}) AS landed QUALIFY ROW_NUMBER() OVER "
        f"(PARTITION BY id ORDER BY {newest_first('last_updated')}, row) > 1)"
    )


def changed_rows(table: str, staged: str, into: str) -> str:
    """DuckDB: create the temporary table ``into`` of the ``staged`` rows
    (``merge_sql.newest_staged`` with ``row``) that change the raw table under the current-state
    rule (new ids, and rows ``newer`` than the stored one): ``row``, ``batch`` and ``n`` (where
    the staged row and its text are), ``old_row`` (the rowid of the stored row it replaces, NULL
    for a new id) and ``deleted``. The decision of ``merge_sql.merge_raw``, taken once, then
    applied by ``delete_replaced``, ``insert_changed`` and ``insert_changed_lines`` (see
    ``duckdb_landing.DuckDBLanding._merge``); the resources stay where they are staged."""
    return (
        f"CREATE OR REPLACE TEMP TABLE {identifier(into)} AS "
        "SELECT s.row, s.batch, s.n, t.rowid AS old_row, s.deleted "
        f"FROM ({staged}) AS s LEFT JOIN {qualified(table)} AS t "
        "ON t.source_server = s.source_server AND t.id = s.id "
        f"WHERE t.id IS NULL OR {newer('s', 't')}"
    )


def delete_replaced(table: str, changed: str) -> str:
    """DuckDB: delete the stored rows that the rows of ``changed`` replace."""
    return (
        f"DELETE FROM {qualified(table)} WHERE rowid IN "
        f"(SELECT old_row FROM {identifier(changed)} WHERE old_row IS NOT NULL)"
    )


def insert_changed(
    table: str, source: str, changed: str, server: str, sync_id: str, at: str
) -> str:
    """DuckDB: insert the staged rows of ``source`` that ``changed`` names and that hold their
    resource (or are tombstones), after ``delete_replaced``."""
    d = DUCKDB
    return (
        f"INSERT INTO {qualified(table)} SELECT id, version_id, "
        f"{d.to_timestamp('last_updated')}, {d.to_json('resource')}, {d.literal(server)}, "
        f"{d.literal(sync_id)}, {d.to_timestamp(d.literal(at))}, deleted "
        f"FROM {identifier(source)} WHERE rowid IN "
        f"(SELECT row FROM {identifier(changed)} WHERE batch IS NULL)"
    )


def changed_batches(changed: str) -> str:
    """DuckDB: the batches (``STAGE_JSON_DDL``) of which ``changed`` names lines."""
    return (
        f"SELECT DISTINCT batch FROM {identifier(changed)} WHERE batch IS NOT NULL ORDER BY batch"
    )


def insert_changed_lines(
    table: str, lines: str, batch: int, changed: str, server: str, sync_id: str, at: str
) -> str:
    """DuckDB: insert the JSON lines of ``lines`` (batch number ``batch``, in
    ``batches.LINES_SCHEMA``) that ``changed`` names, after ``delete_replaced``."""
    d = DUCKDB
    return (
        f"INSERT INTO {qualified(table)} SELECT id, version_id, "
        f"{d.to_timestamp('last_updated')}, text, {d.literal(server)}, {d.literal(sync_id)}, "
        f"{d.to_timestamp(d.literal(at))}, FALSE FROM {identifier(lines)} WHERE n IN "
        f"(SELECT n FROM {identifier(changed)} WHERE batch = {int(batch)})"
    )


def count_changed(changed: str) -> str:
    """DuckDB: one row (inserted, updated, deleted) of the rows of ``changed``."""
    return (
        "SELECT COUNT(*) FILTER (WHERE old_row IS NULL AND NOT deleted), "
        "COUNT(*) FILTER (WHERE old_row IS NOT NULL AND NOT deleted), "
        f"COUNT(*) FILTER (WHERE deleted) FROM {identifier(changed)}"
    )
