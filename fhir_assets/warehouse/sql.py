"""The landing SQL, written once for DuckDB and Snowflake.

Both warehouses get the same statements; a small ``Dialect`` fills in the few words that differ
(JSON vs VARIANT, how a string becomes JSON or a timestamp). The staged rows (``STAGE_COLUMNS``)
are strings, so a Parquet file, an Arrow batch and a Snowflake staging table all look alike.

Current-state rule, for one (source_server, id): a row replaces the stored row only when it is
strictly newer (``newer``), decided by the first of these that applies:
    1. both rows have integer ``meta.versionId``s: the higher version wins;
    2. both rows have a ``meta.lastUpdated``: the later time wins;
    3. otherwise (a server that sends no ``meta``, as the SMART reference server and some Epic
       and Oracle exports do): the row of a later landing (``ingested_at``) of another sync
       (``sync_id``) wins. Exports and syncs land in the order they were made, so the later
       export (``transactionTime``) or later sync wins. (Not "if the text differs": comparing
       the stored JSON made DuckDB read every matched row's resource and ran the MERGE out of
       its memory limit.)
    4. and where rule 3 applies, a tombstone replaces a live row of the same sync: a resource
       listed in an export's ``deleted`` files ends deleted even though the same export's
       ``output`` holds it without ``meta`` (the SMART reference server does that; tombstones
       land after the resources, ``export_folder.land_deletions``). Landed again, the export's
       live row does not come back: only a later sync's row replaces a tombstone by rule 3.
And always:
    * an equal version or an equal time never overwrites, nor does the same sync landed again
      (an export keeps its sync id: the bulk asset's partition, ``fhir-assets land``'s
      ``export-<transactionTime>``), so re-landing the same export changes nothing;
    * a tombstone (``deleted``) obeys the same rule (one without a time of its own carries the
      export's ``transactionTime``, else the landing time) and never replaces another tombstone;
    * within one batch only the newest row per id takes part (``newest_first``: by versionId
      when all of the id's rows have integer ones, else by lastUpdated; all rows of a landing
      share its ``ingested_at``); resources are merged first and tombstones second, so that a
      tombstone without a version still beats a numbered version by time. DuckDB's append mode
      treats a whole landing as one batch.
Re-landing an older export after a newer one, rule 3 lets the older text win again for
resources without ``meta`` (nothing in them says which is older), and a re-run REST sync (a new
run id) rewrites them (same text, counted as updated); landing the newer export again restores
it.

Pairwise, the rule is not a total order when rows of one id mix integer and other (or no)
versions and their versions and times disagree; there the result can depend on how the input
was batched. One server gives an id one kind of version, so it takes unusual input to get there.
"""

# Statements are built from identifiers checked by ``identifier`` and values quoted by
# Dialect.literal, never from raw input, so string-built SQL is safe here.
# ruff: noqa: S608

from __future__ import annotations

import re
from dataclasses import dataclass

from .layout import QUARANTINE_COLUMNS, QUARANTINE_TABLE, RAW_COLUMNS, RAW_SCHEMA
from .validation import ID_CORE, INSTANT_CORE

# What a staged batch holds, in this order; source_server, sync_id and ingested_at are the same
# for a whole landing and are added by the MERGE.
STAGE_COLUMNS: tuple[str, ...] = ("id", "version_id", "last_updated", "resource", "deleted")
# Those columns as a table (a Snowflake staging table, DuckDB's table of held-back tombstones).
STAGE_DDL = (
    "id VARCHAR, version_id VARCHAR, last_updated VARCHAR, resource VARCHAR, deleted BOOLEAN"
)

# DuckDB's temporary tables of staged rows (``duckdb.DuckDBLanding``): the resource as JSON, so
# that rows read from Arrow's JSON type are not parsed again, or, for a line whose text stays in
# its Arrow batch until the rows are applied, NULL with where the line is: ``batch`` (the
# landing's number of the batch) and ``n`` (its position in the batch).
STAGE_JSON_DDL = (
    STAGE_DDL.replace("resource VARCHAR", "resource JSON") + ", batch INTEGER, n INTEGER"
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The words that differ between the warehouses (one per ``kinds.WarehouseKind``).

    Attributes:
        name: the kind's name.
        json_type, timestamp_type: column types of JSON and UTC-aware timestamps.
        parse_json: SQL template turning JSON text (``{}``) into ``json_type``.
        json_text: SQL template of the text at a dotted path (``{expr}``, ``{path}``).
        json_storage: words after the JSON column's type in the raw tables' DDL.
        backslash_escapes: string literals treat a backslash as an escape character.
        upper_names: unquoted names fold to upper case (a quoted name must be upper case).
        json_rows: FROM-clause template: one row per item of the JSON array at a dotted path
            (``{expr}``, ``{path}``, ``{alias}``), the item being ``<alias>.value``.
        scratch_table: the words creating a table of one run's own, dropped at its end, and the
            schema prefix of its name.
        keyed_hash: SQL template of a keyed SHA-256 of text (``{ipad}`` and ``{opad}``: the
            key's pads as hex, ``{text}``), as hex; ``keyed_hash_scheme`` names what it
            computes for the Python reference (``deid.keyed.pseudonym``): ``hmac`` (HMAC-SHA256)
            or ``sha2-hex`` (SHA-256 of the outer pad's hex and the inner digest's hex, for a
            warehouse without HMAC or binary concatenation).
        add_days: SQL templates moving a DATE (``date``) or a timestamp (``timestamp``) by
            ``{days}`` days, keeping its type (``{expr}``).
        years_before: SQL template of the DATE ``{years}`` years before the ISO date ``{day}``.
        views: ``module:Class`` of the views compiler's dialect (``views/dialect.py``).
    """

    name: str
    json_type: str
    timestamp_type: str
    views: str
    parse_json: str = "CAST({} AS JSON)"
    json_text: str = "json_extract_string({expr}, '$.{path}')"
    json_rows: str = "UNNEST(json_extract({expr}, '$.{path}[*]')) AS {alias}(value)"
    json_storage: str = ""
    backslash_escapes: bool = False
    upper_names: bool = False
    scratch_table: tuple[str, str] = ("CREATE TEMPORARY TABLE", "")
    keyed_hash: str = "sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || encode({text}))))"
    keyed_hash_scheme: str = "hmac"
    add_days: tuple[tuple[str, str], ...] = (
        ("date", "{expr} + {days}"),
        ("timestamp", "{expr} + to_days({days})"),
    )
    years_before: str = "CAST(CAST('{day}' AS DATE) - INTERVAL {years} YEAR AS DATE)"

    def to_json(self, expr: str) -> str:
        """SQL turning JSON text into the JSON/VARIANT type."""
        return self.parse_json.format(expr)

    def to_timestamp(self, expr: str) -> str:
        """SQL turning an ISO 8601 instant into a UTC-aware timestamp."""
        return f"CAST({expr} AS {self.timestamp_type})"

    def literal(self, value: str) -> str:
        """A string literal; Snowflake also treats backslash as an escape character."""
        if self.backslash_escapes:
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"


# The embedded default's words (``kind_duckdb``; the DuckDB-only statements below use them too).
# zstd: JSON compresses 5x better than with DuckDB's default (FSST), and writes faster
# (bench/landing.py: 200 MB of Observations in 17 MB instead of 80 MB).
DUCKDB = Dialect(
    "duckdb",
    json_type="JSON",
    timestamp_type="TIMESTAMPTZ",
    views="fhir_assets.views.duckdb_dialect:DuckDBDialect",
    json_storage="USING COMPRESSION zstd",
)


# One part of an identifier: what both warehouses read unquoted, case-insensitively, as one name.
IDENTIFIER_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class UnsafeIdentifierError(ValueError):
    """A name about to become an SQL identifier is not a plain one."""


def identifier(*parts: str) -> str:
    """The one gate for every SQL identifier built here, in DuckDB and Snowflake: the parts
    (each possibly dotted already) joined by dots, each checked against ``IDENTIFIER_PART``.

    Parts are checked, not quoted: a quoted name is case-sensitive in Snowflake (``"patient"``
    is not the ``PATIENT`` the unquoted DDL made), and a name of lower-case letters, digits and
    ``_`` needs no quotes in either warehouse, so it can carry no SQL (ASCII letters only: no
    look-alikes such as a full-width or dotted capital).

    Raises:
        UnsafeIdentifierError: a part is empty or holds anything else; the message shows it
            quoted (``repr``, cut short).
    """
    for part in (p for whole in parts for p in whole.split(".")):
        if IDENTIFIER_PART.fullmatch(part) is None:
            shown = repr(part) if len(part) <= 60 else repr(part[:56]) + "..."
            raise UnsafeIdentifierError(
                f"refusing SQL identifier {shown}: only A-Z, a-z, 0-9 and _ (not first a digit)"
            )
    return ".".join(parts)


def quoted(dialect: Dialect, *parts: str) -> str:
    """``identifier`` with every part double-quoted, for names that may be SQL keywords (a view
    named ``order``). Snowflake folds unquoted names to upper case, so the quoted part is upper
    case there: ``"ORDER"`` is the table an unquoted ``order`` would name."""
    checked = identifier(*parts).split(".")
    return ".".join(f'"{p.upper()}"' if dialect.upper_names else f'"{p}"' for p in checked)


def qualified(table: str) -> str:
    """``fhir_raw.<table>``, through ``identifier``."""
    return identifier(RAW_SCHEMA, table)


def create_raw_table(dialect: Dialect, table: str) -> str:
    """DDL of a raw table in ``RAW_COLUMNS`` order."""
    types = {
        "id": "VARCHAR",
        "version_id": "VARCHAR",
        "last_updated": dialect.timestamp_type,
        "resource": dialect.json_type,
        "source_server": "VARCHAR",
        "sync_id": "VARCHAR",
        "ingested_at": dialect.timestamp_type,
        "deleted": "BOOLEAN",
    }
    if dialect.json_storage:
        types["resource"] += " " + dialect.json_storage
    columns = ", ".join(f"{name} {types[name]}" for name in RAW_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {qualified(table)} ({columns})"


def create_quarantine_table(dialect: Dialect) -> str:
    """DDL of ``fhir_raw._quarantine``."""
    types = dict.fromkeys(QUARANTINE_COLUMNS, "VARCHAR") | {
        "line": "BIGINT",
        "ingested_at": dialect.timestamp_type,
    }
    columns = ", ".join(f"{name} {types[name]}" for name in QUARANTINE_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {qualified(QUARANTINE_TABLE)} ({columns})"


def version_number(expr: str) -> str:
    """The version as an integer when it is written as one ('7'), else NULL ('1.5', 'W/x')."""
    # TRY_CAST alone rounds '1.5' to 2 in both warehouses: require the text to round-trip.
    return (
        f"CASE WHEN {expr} = CAST(TRY_CAST({expr} AS BIGINT) AS VARCHAR) "
        f"THEN TRY_CAST({expr} AS BIGINT) END"
    )


def newer(new: str, old: str) -> str:
    """SQL true when row ``new`` must replace row ``old`` (aliases of two raw rows), by the
    module doc's rules 1-4."""
    new_v, old_v = version_number(f"{new}.version_id"), version_number(f"{old}.version_id")
    later = (
        f"{new}.ingested_at > {old}.ingested_at AND {new}.sync_id <> {old}.sync_id"
        f" OR {new}.deleted AND NOT {old}.deleted AND {new}.sync_id = {old}.sync_id"
    )
    return (
        f"(NOT ({new}.deleted AND {old}.deleted) AND CASE"
        f" WHEN {new_v} IS NOT NULL AND {old_v} IS NOT NULL THEN {new_v} > {old_v}"
        f" WHEN {new}.last_updated IS NOT NULL AND {old}.last_updated IS NOT NULL"
        f" THEN {new}.last_updated > {old}.last_updated"
        f" ELSE {later} END)"
    )


def newest_first(updated: str) -> str:
    """ORDER BY terms putting the newest row of an id first, as ``newer`` decides: by versionId
    when every row of the id has an integer one, else by lastUpdated (then versionId). The rows
    need a ``numbered`` column (``NUMBERED``). Where rows of one id mix both kinds of version
    and disagree, ``newer`` itself is no order; this picks the latest lastUpdated."""
    number = version_number("version_id")
    return (
        f"CASE WHEN numbered THEN {number} END DESC NULLS LAST, "
        f"{updated} DESC NULLS LAST, {number} DESC NULLS LAST"
    )


# Whether every row of the id has an integer versionId (see ``newest_first``).
NUMBERED = (
    f"MIN(CASE WHEN {version_number('version_id')} IS NULL THEN 0 ELSE 1 END) "
    "OVER (PARTITION BY id) = 1 AS numbered"
)


def newest_staged(
    dialect: Dialect,
    source: str,
    server: str,
    sync_id: str,
    at: str,
    *,
    tombstones: bool,
    row: bool = False,
    unique: bool = False,
) -> str:
    """The staged resources (or tombstones) of ``source`` as raw rows, newest per id only.
    With ``row`` (DuckDB, ``source`` a table of ``STAGE_JSON_DDL``), each row's ``rowid`` in
    ``source`` as ``row``, ``batch`` and ``n`` instead of its resource (``changed_rows``).
    ``unique`` says that no id repeats among them (``repeated_ids``): every row is then the
    newest of its id, and the two window functions that pick it are left out (on 130,000 staged
    rows they took 0.07 s of the join's 0.14 s)."""
    updated = dialect.to_timestamp("last_updated")
    resource = "row, batch, n" if row else f"{dialect.to_json('resource')} AS resource"
    numbered = "" if unique else f", {NUMBERED}"
    newest = (
        ""
        if unique
        else f" QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY {newest_first(updated)}) = 1"
    )
    return (
        f"SELECT id, version_id, {updated} AS last_updated, {resource}, "
        f"{dialect.literal(server)} AS source_server, {dialect.literal(sync_id)} AS sync_id, "
        f"{dialect.to_timestamp(dialect.literal(at))} AS ingested_at, deleted "
        f"FROM (SELECT *{', rowid AS row' if row else ''}{numbered} FROM {identifier(source)} "
        f"WHERE deleted = {'TRUE' if tombstones else 'FALSE'}) AS staged{newest}"
    )


def repeated_ids(source: str, *, tombstones: bool) -> str:
    """DuckDB: one row holding how many staged resources (or tombstones) of ``source`` repeat
    an id (``newest_staged``'s ``unique`` when none does)."""
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
    ``ok``) into the raw table as they are: no MERGE (see ``duckdb.DuckDBLanding``)."""
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
    """DuckDB: keep one row per id of ``server``: the newest by the order of ``newest_staged``,
    the first landed among equals (as a MERGE keeps an equal version out)."""
    where = f"source_server = {DUCKDB.literal(server)}"
    return (
        f"DELETE FROM {qualified(table)} WHERE {where} AND rowid IN (SELECT row FROM ("
        f"SELECT rowid AS row, id, version_id, last_updated, {NUMBERED} "
        f"FROM {qualified(table)} WHERE {where}) AS landed QUALIFY ROW_NUMBER() OVER "
        f"(PARTITION BY id ORDER BY {newest_first('last_updated')}, row) > 1)"
    )


def count_outcomes(table: str, staged: str) -> str:
    """One row (inserted, updated, deleted) that ``merge_raw`` is about to apply."""
    changes = f"t.id IS NULL OR {newer('s', 't')}"
    return (
        "SELECT"
        " COALESCE(SUM(CASE WHEN t.id IS NULL AND NOT s.deleted THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN t.id IS NOT NULL AND NOT s.deleted AND {newer('s', 't')}"
        " THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN s.deleted AND ({changes}) THEN 1 ELSE 0 END), 0) "
        f"FROM ({staged}) AS s LEFT JOIN {qualified(table)} AS t "
        "ON t.source_server = s.source_server AND t.id = s.id"
    )


def merge_raw(table: str, staged: str, *, returning: bool = False) -> str:
    """MERGE the newest staged rows into the raw table under the current-state rule.

    With ``returning`` (DuckDB only), the statement returns ``(merge_action, deleted)`` per
    changed row, which counts the outcome without a second query (``count_outcomes``)."""
    updates = ", ".join(f"{c} = s.{c}" for c in RAW_COLUMNS if c not in ("id", "source_server"))
    columns = ", ".join(RAW_COLUMNS)
    values = ", ".join(f"s.{c}" for c in RAW_COLUMNS)
    return (
        f"MERGE INTO {qualified(table)} AS t USING ({staged}) AS s "
        "ON t.source_server = s.source_server AND t.id = s.id "
        f"WHEN MATCHED AND {newer('s', 't')} THEN UPDATE SET {updates} "
        f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
        + (" RETURNING merge_action, deleted" if returning else "")
    )


def changed_rows(table: str, staged: str, into: str) -> str:
    """DuckDB: create the temporary table ``into`` of the ``staged`` rows (``newest_staged``
    with ``row``) that change the raw table under the current-state rule (new ids, and rows
    ``newer`` than the stored one): ``row``, ``batch`` and ``n`` (where the staged row and its
    text are), ``old_row`` (the rowid of the stored row it replaces, NULL for a new id) and
    ``deleted``. The decision of ``merge_raw``, taken once, then applied by ``delete_replaced``,
    ``insert_changed`` and ``insert_changed_lines`` (see ``duckdb.DuckDBLanding._merge``); the
    resources stay where they are staged."""
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


def merge_quarantine(dialect: Dialect, source: str, server: str, sync_id: str, at: str) -> str:
    """Add staged quarantine rows not already there (same type, source, line and text)."""
    staged = (
        "SELECT resource_type, source, line, error, raw, "
        f"{dialect.literal(server)} AS source_server, {dialect.literal(sync_id)} AS sync_id, "
        f"{dialect.to_timestamp(dialect.literal(at))} AS ingested_at FROM {identifier(source)}"
    )
    columns = ", ".join(QUARANTINE_COLUMNS)
    values = ", ".join(f"s.{c}" for c in QUARANTINE_COLUMNS)
    return (
        f"MERGE INTO {qualified(QUARANTINE_TABLE)} AS t USING ({staged}) AS s "
        "ON t.resource_type = s.resource_type AND t.source = s.source AND t.line = s.line "
        "AND t.raw = s.raw "
        f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
    )


def json_text(dialect: Dialect, expr: str, path: str) -> str:
    """SQL for the text at a dotted ``path`` (e.g. ``subject.reference``) in a JSON column."""
    return dialect.json_text.format(expr=expr, path=path)


def json_rows(dialect: Dialect, expr: str, path: str, alias: str) -> str:
    """A FROM-clause item: a row per item of the JSON array at ``path`` of ``expr`` (a lateral
    join), the item being ``<alias>.value``; none when the path holds no array."""
    return dialect.json_rows.format(expr=expr, path=path, alias=alias)


def scratch_table(dialect: Dialect, name: str) -> tuple[str, str]:
    """The CREATE words and the checked, qualified name of a table of one run's own (``name``
    a plain identifier); the caller drops it when done."""
    create, prefix = dialect.scratch_table
    return create, identifier(f"{prefix}{name}")


def table_exists(table: str) -> str:
    """One row holding 1 when ``fhir_raw.<table>`` exists, else 0."""
    return (
        "SELECT COUNT(*) FROM information_schema.tables "
        f"WHERE UPPER(table_schema) = {DUCKDB.literal(RAW_SCHEMA.upper())} AND UPPER(table_name) = "
        f"{DUCKDB.literal(identifier(table).upper())}"
    )


def raw_table_names() -> str:
    """The names of ``fhir_raw``'s tables, a row each (upper case in Snowflake)."""
    return (
        "SELECT table_name FROM information_schema.tables "
        f"WHERE UPPER(table_schema) = {DUCKDB.literal(RAW_SCHEMA.upper())}"
    )


def history_table(table: str) -> str:
    """The history table of a raw table: ``<table>_history``."""
    return identifier(f"{table}_history")


def staged_versions(dialect: Dialect, source: str, server: str, sync_id: str, at: str) -> str:
    """Every distinct version (resource or tombstone) staged in ``source``, as raw rows."""
    return (
        f"SELECT id, version_id, {dialect.to_timestamp('last_updated')} AS last_updated, "
        f"{dialect.to_json('resource')} AS resource, "
        f"{dialect.literal(server)} AS source_server, {dialect.literal(sync_id)} AS sync_id, "
        f"{dialect.to_timestamp(dialect.literal(at))} AS ingested_at, deleted "
        f"FROM {identifier(source)} QUALIFY ROW_NUMBER() OVER "
        "(PARTITION BY id, version_id, last_updated, deleted ORDER BY id) = 1"
    )


def merge_history(table: str, staged: str) -> str:
    """Add versions not yet in ``<table>_history``; a version is (server, id, versionId,
    lastUpdated, deleted), and the first landed copy of a version stays."""
    columns = ", ".join(RAW_COLUMNS)
    values = ", ".join(f"s.{c}" for c in RAW_COLUMNS)
    return (
        f"MERGE INTO {qualified(history_table(table))} AS t USING ({staged}) AS s "
        "ON t.source_server = s.source_server AND t.id = s.id "
        "AND t.version_id IS NOT DISTINCT FROM s.version_id "
        "AND t.last_updated IS NOT DISTINCT FROM s.last_updated AND t.deleted = s.deleted "
        f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
    )
