"""The SQL words and identifiers, written once for DuckDB and Snowflake.

Both warehouses get the same statements; a small ``Dialect`` fills in the few words that differ
(JSON vs VARIANT, how a string becomes JSON or a timestamp). ``identifier`` is the one gate for
every SQL identifier; ``quoted`` and ``qualified`` build on it. Here too: the DDL of the raw and
quarantine tables, JSON paths (``json_text``, ``json_rows``), scratch tables and the catalog
queries. The landing's statements and the current-state rule are in ``merge_sql.py`` (both
warehouses) and ``duckdb_sql.py`` (DuckDB's append and staged merge).
"""

# Statements are built from identifiers checked by ``identifier`` and values quoted by
# Dialect.literal, never from raw input, so string-built SQL is safe here.
# ruff: noqa: S608

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .layout import QUARANTINE_COLUMNS, QUARANTINE_TABLE, RAW_COLUMNS, RAW_SCHEMA


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
        add_days, add_days_timestamp: SQL templates moving a DATE, or a timestamp, ``{expr}``
            by ``{days}`` days, keeping its type.
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
    add_days: str = "{expr} + {days}"
    add_days_timestamp: str = "{expr} + to_days({days})"
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


# The embedded default's words (``kind_duckdb``; ``duckdb_sql``'s statements use them too).
# zstd: JSON compresses 5x better than with DuckDB's default (FSST), and writes faster
# (bench/landing.py: 200 MB of Observations in 17 MB instead of 80 MB).
DUCKDB = Dialect(
    "duckdb",
    json_type="JSON",
    timestamp_type="TIMESTAMPTZ",
    views="fhir_assets.views.duckdb_dialect:DuckDBDialect",
    json_storage="USING COMPRESSION zstd",
)


INSERT_ROWS = 500  # rows per INSERT ... VALUES statement (``insert_values``)

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


def insert_values(table: str, rows: Sequence[str], chunk: int = INSERT_ROWS) -> Iterator[str]:
    """The INSERT statements adding ``rows`` (each a ``(...)`` of SQL literals) to ``table``
    (checked by ``identifier``), ``chunk`` rows a statement: one statement per row is a round
    trip each in Snowflake, and one for all of them an unbounded statement."""
    for start in range(0, len(rows), chunk):
        yield f"INSERT INTO {identifier(table)} VALUES " + ", ".join(rows[start : start + chunk])


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
