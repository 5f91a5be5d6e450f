"""The raw table layout, identical in every warehouse.

One table per resource type, schema ``fhir_raw``, table ``<type lower>``, columns in exactly the
order of ``RAW_COLUMNS`` (the landing SQL in
``sql.py``, ``merge_sql.py`` and ``duckdb_sql.py`` builds every statement from it).
"""

from __future__ import annotations

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
