"""Small builders for landing tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_assets.warehouse.batches import Entry
from fhir_assets.warehouse.protocol import Warehouse

SERVER = "https://ehr.example.org/fhir"


def patient(pid: str, version: str | None, updated: str, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"lastUpdated": updated}
    if version is not None:
        meta["versionId"] = version
    return {"resourceType": "Patient", "id": pid, "meta": meta, **extra}


def lines(*items: dict[str, Any] | str, source: str = "Patient.ndjson") -> list[Entry]:
    """File-like entries: dicts become JSON lines (with newline), strings are taken as is."""
    return [
        (source, n, orjson.dumps(item) + b"\n" if isinstance(item, dict) else item.encode())
        for n, item in enumerate(items, 1)
    ]


def at(day: int) -> datetime:
    return datetime(2025, 1, day, 12, 0, tzinfo=UTC)


def current(warehouse: Warehouse, table: str = "patient") -> list[tuple[Any, ...]]:
    """The raw table, normalized across warehouses: resource parsed, times in UTC, sorted."""
    columns = "id, version_id, last_updated, resource, source_server, sync_id, ingested_at, deleted"
    rows = warehouse.fetch(f"SELECT {columns} FROM fhir_raw.{table}")  # noqa: S608
    normalized = [
        (
            row[0],
            row[1],
            row[2].astimezone(UTC) if row[2] else None,
            json.loads(row[3]) if isinstance(row[3], str) else row[3],
            row[4],
            row[5],
            row[6].astimezone(UTC),
            bool(row[7]),
        )
        for row in rows
    ]
    return sorted(normalized, key=lambda row: (row[0], str(row[1]), row[7], str(row[2])))


def quarantine(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    """The quarantine table without ingested_at, sorted."""
    rows = warehouse.fetch(
        "SELECT resource_type, source, line, error, raw, source_server, sync_id "
        "FROM fhir_raw._quarantine"
    )
    return sorted(tuple(row) for row in rows)
