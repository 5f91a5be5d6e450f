"""The raw table layout, identical in every warehouse.

One table per resource type, schema ``fhir_raw``, table ``<type lower>``. dagster-duckdb inserts
DataFrames by column position, so every frame is built in exactly the order of ``RAW_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pandas as pd

RAW_SCHEMA = "fhir_raw"

RAW_COLUMNS: tuple[str, ...] = (
    "id",  # Resource.id
    "version_id",  # Resource.meta.versionId
    "last_updated",  # Resource.meta.lastUpdated as a UTC timestamp
    "resource",  # the resource as JSON text, exactly as the server sent it
    "source_server",  # the FHIR base URL it came from
    "sync_id",  # the Dagster run (or export) that fetched it
    "ingested_at",  # when it was landed (UTC)
    "deleted",  # true for a tombstone
)


def raw_row(
    resource: Mapping[str, Any], *, source_server: str, sync_id: str, ingested_at: datetime
) -> tuple[Any, ...]:
    """One row of a raw table, in ``RAW_COLUMNS`` order."""
    meta = resource.get("meta") or {}
    return (
        resource.get("id"),
        meta.get("versionId"),
        meta.get("lastUpdated"),
        orjson.dumps(resource).decode(),
        source_server,
        sync_id,
        ingested_at,
        False,
    )


def raw_frame(rows: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
    """A DataFrame of raw rows with fixed column order and types."""
    import pandas as pd  # here, not at the top: the landing path does not need pandas

    frame = pd.DataFrame.from_records(list(rows), columns=list(RAW_COLUMNS))
    frame["last_updated"] = pd.to_datetime(frame["last_updated"], utc=True, format="ISO8601")
    frame["ingested_at"] = pd.to_datetime(frame["ingested_at"], utc=True)
    frame["deleted"] = frame["deleted"].astype(bool)
    return frame


# Rows that could not be landed (not JSON, wrong type, failed validation): never dropped.
QUARANTINE_TABLE = "_quarantine"

QUARANTINE_COLUMNS: tuple[str, ...] = (
    "resource_type",  # the type being landed when the row was rejected
    "source",  # file path or redacted URL it came from
    "line",  # line number in the file, or position in the search page / sync
    "error",  # why it was rejected (no resource content)
    "raw",  # the raw text exactly as received (UTF-8, undecodable bytes replaced)
    "source_server",
    "sync_id",
    "ingested_at",
)
