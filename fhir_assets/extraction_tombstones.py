"""Tombstones for ``$extract`` results that their QuestionnaireResponse no longer gives.

An extracted resource is a row of ``<base URL>#extract`` in its raw table whose ``meta.tag``
``{system: EXTRACTED_FROM, code: "QuestionnaireResponse/<id>"}`` names its response. After a run
(``extraction.land_extraction``), such a live row is stale when:

* its response was extracted again successfully in this run and that extraction did not give the
  row's (type, id) (a changed answer yields fewer or other resources); the tombstone carries the
  response's new ``versionId``/``lastUpdated``;
* its response is a tombstone in ``fhir_raw.questionnaireresponse`` (deleted on the server); the
  tombstone carries the deletion's version and time.

Both sets are found by one query each over every raw table (the run's responses and results are
staged in a temporary table), and the tombstones land through ``warehouse.landing.land``, so the
landing's rules decide (a newer row wins, history keeps the old one) and views' ``NOT deleted``
hides them. A response whose extraction failed is in neither set: its earlier results stay.
"""

# Statements are built from identifiers checked by ``sql.identifier`` and values quoted by
# ``Dialect.literal``, never from raw input.
# ruff: noqa: S608

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .warehouse import sql
from .warehouse.batches import Entry
from .warehouse.landing import LandingOptions, LandingResult, land
from .warehouse.protocol import Provenance, Warehouse, iso
from .warehouse.tombstones import Tombstone

# Results of deleted responses tombstoned per run at most (the rest stays live and is found again
# by the next run); stale results of responses extracted again are bounded by the run itself.
MAX_DELETED_RESULTS = 50_000
TYPE_TABLE = re.compile(r"[a-z]+")  # fhir_raw.<type lower>: not _quarantine, _log, *_history


def tagged_sql(d: sql.Dialect, table: str, source: str, system: str) -> str:
    """A raw table's live extracted rows with the code of each of their EXTRACTED_FROM tags:
    (resource_type, id, code), in ``d``'s words (``source``, ``system``: SQL literals)."""
    return (
        f"SELECT {sql.json_text(d, 't.resource', 'resourceType')} AS resource_type, t.id, "
        f"{sql.json_text(d, 'g.value', 'code')} AS code "
        f"FROM {table} t, {sql.json_rows(d, 't.resource', 'meta.tag', 'g')} "
        f"WHERE t.source_server = {source} AND NOT t.deleted "
        f"AND {sql.json_text(d, 'g.value', 'system')} = {system}"
    )


@dataclass(slots=True)
class Stale:
    """The tombstones of one run: found per response, and what the landing applied."""

    per_response: Counter[str] = field(default_factory=Counter)
    deleted_responses: dict[str, str] = field(default_factory=dict)  # id -> its version
    results: list[LandingResult] = field(default_factory=list)
    more_left: bool = False  # MAX_DELETED_RESULTS was reached

    @property
    def tombstoned(self) -> int:
        return sum(r.deleted for r in self.results)


@dataclass(frozen=True, slots=True)
class Extracted:
    """A response extracted in this run: its version and the (type, id) of its results."""

    id: str
    version_id: str | None
    last_updated: str | None
    results: Sequence[tuple[str, str]]


def tombstone_stale(
    warehouse: Warehouse,
    extracted: Sequence[Extracted],
    provenance: Provenance,
    options: LandingOptions | None = None,
    *,
    server: str,
    system: str,
) -> Stale:
    """Tombstone the stale results of ``extracted`` and of deleted responses of ``server``
    (rows of ``provenance.source_server`` tagged under ``system``); see the module doc."""
    stale = Stale()
    tables = raw_tables(warehouse)
    if not tables:
        return stale
    d = warehouse.dialect
    source, tag_system = d.literal(provenance.source_server), d.literal(system)
    tagged = " UNION ALL ".join(
        tagged_sql(d, sql.qualified(table), source, tag_system) for table in tables
    )
    rows = changed_rows(warehouse, tagged, extracted) if extracted else []
    if "questionnaireresponse" in tables:
        gone = warehouse.fetch(deleted_sql(warehouse, tagged, server, MAX_DELETED_RESULTS + 1))
        stale.more_left = len(gone) > MAX_DELETED_RESULTS
        gone = gone[:MAX_DELETED_RESULTS]
        stale.deleted_responses = {str(r[2]): f"{r[3] or ''}|{_instant(r[4])}" for r in gone}
        rows += gone
    stale.results = land_tombstones(warehouse, rows, stale, provenance, options)
    return stale


def changed_rows(
    warehouse: Warehouse, tagged: str, extracted: Iterable[Extracted]
) -> list[tuple[Any, ...]]:
    """``changed_sql``'s rows, through a table of this run's responses, dropped at the end."""
    # temporary in DuckDB; a transient table in fhir_raw in Snowflake (``sql.Dialect``)
    create, run_table = sql.scratch_table(
        warehouse.dialect, f"_extract_run_{uuid.uuid4().hex[:12]}"
    )
    try:
        stage_run(warehouse, extracted, create, run_table)
        return warehouse.fetch(changed_sql(tagged, run_table))
    finally:
        warehouse.fetch(f"DROP TABLE IF EXISTS {run_table}")


def land_tombstones(
    warehouse: Warehouse,
    rows: Iterable[tuple[Any, ...]],
    stale: Stale,
    provenance: Provenance,
    options: LandingOptions | None,
) -> list[LandingResult]:
    """Land a tombstone for each (type, id, response, version_id, last_updated), by type,
    counting them per response in ``stale``."""
    by_type: dict[str, list[Entry]] = {}
    for rtype, rid, response, version_id, updated in rows:
        stale.per_response[str(response)] += 1
        tombstone = Tombstone(str(rid), version_id, _instant(updated) or None)
        entries = by_type.setdefault(str(rtype), [])
        entries.append((f"QuestionnaireResponse/{response}", len(entries) + 1, tombstone))
    return [
        land(warehouse, rtype, entries, provenance, options)
        for rtype, entries in sorted(by_type.items())
    ]


def raw_tables(warehouse: Warehouse) -> list[str]:
    """The resource tables of ``fhir_raw`` (lower case), sorted."""
    names = warehouse.fetch(sql.raw_table_names())
    return sorted({str(n).lower() for (n,) in names if TYPE_TABLE.fullmatch(str(n).lower())})


def stage_run(
    warehouse: Warehouse, extracted: Iterable[Extracted], create: str, table: str
) -> None:
    """``table`` (made by the ``create`` words): a row per extracted response (no result) and
    per result it gave."""
    literal = warehouse.dialect.literal

    def text(value: str | None) -> str:
        return "NULL" if value is None else literal(value)

    warehouse.fetch(
        f"{create} {table} (response_id VARCHAR, "
        "version_id VARCHAR, last_updated VARCHAR, resource_type VARCHAR, resource_id VARCHAR)"
    )
    rows = []
    for response in extracted:
        rid = literal(response.id)
        rows.append(f"({rid}, {text(response.version_id)}, {text(response.last_updated)}, "
                    "NULL, NULL)")  # fmt: skip
        rows += [f"({rid}, NULL, NULL, {literal(t)}, {literal(i)})" for t, i in response.results]
    for statement in sql.insert_values(table, rows):
        warehouse.fetch(statement)


def changed_sql(tagged: str, run_table: str) -> str:
    """(type, id, response, version_id, last_updated) of tagged rows whose response was extracted
    in this run without giving them."""
    return (
        f"SELECT x.resource_type, x.id, r.response_id, r.version_id, r.last_updated "
        f"FROM ({tagged}) x JOIN {run_table} r ON r.resource_id IS NULL "
        "AND x.code = 'QuestionnaireResponse/' || r.response_id "
        f"WHERE NOT EXISTS (SELECT 1 FROM {run_table} k WHERE k.resource_id = x.id "
        "AND k.resource_type = x.resource_type)"
    )


def deleted_sql(warehouse: Warehouse, tagged: str, server: str, limit: int) -> str:
    """(type, id, response, version_id, last_updated) of tagged rows whose response is a
    tombstone of ``server`` in ``fhir_raw.questionnaireresponse``; at most ``limit`` rows."""
    return (
        f"SELECT x.resource_type, x.id, q.id, q.version_id, q.last_updated "
        f"FROM ({tagged}) x JOIN {sql.qualified('questionnaireresponse')} q "
        f"ON q.deleted AND q.source_server = {warehouse.dialect.literal(server)} "
        "AND x.code = 'QuestionnaireResponse/' || q.id "
        f"ORDER BY q.id, x.resource_type, x.id LIMIT {int(limit)}"
    )


def _instant(value: Any) -> str:
    """A fetched time (a timestamp, or already text) as ISO 8601; '' for none."""
    if value is None:
        return ""
    return iso(value) if isinstance(value, datetime) else str(value)
