"""What a warehouse must offer the landing code, and the values passed between them."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .sql import Dialect

if TYPE_CHECKING:  # annotations only: fhir_assets.settings, so every command, imports this
    import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a landing's rows come from; stored on every row it writes.

    Attributes:
        source_server: the FHIR base URL (without query string) the resources belong to; part of
            the MERGE key, so two servers never overwrite each other's ids.
        sync_id: the Dagster run id, bulk export id or another id of this fetch.
        ingested_at: when the landing started (UTC).
        deleted_at: the time given to tombstones that carry none of their own, e.g. a Bulk Data
            export's ``transactionTime`` for its ``deleted`` files; defaults to ``ingested_at``.
    """

    source_server: str
    sync_id: str
    ingested_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def now(cls, source_server: str, sync_id: str) -> Provenance:
        """Provenance stamped with the current time."""
        return cls(source_server, sync_id, datetime.now(UTC))

    @property
    def at(self) -> str:
        """``ingested_at`` as an ISO 8601 instant."""
        return iso(self.ingested_at)

    @property
    def tombstone_time(self) -> str:
        """The ISO instant for tombstones without a time of their own."""
        return iso(self.deleted_at or self.ingested_at)


def iso(moment: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("landing times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).isoformat()


class Outcome(NamedTuple):
    """What MERGE did: new resources, newer versions applied, tombstones applied."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def __add__(self, other: object) -> Outcome:  # type: ignore[override]
        if not isinstance(other, Outcome):
            return NotImplemented
        return Outcome(*(a + b for a, b in zip(self, other, strict=True)))


class LandingSession(Protocol):
    """One landing into one raw table; ``stage`` may merge right away or defer to ``finish``."""

    def stage_lines(self, lines: pa.Table, resource_type: str) -> list[int]:
        """Accept the JSON lines (``batches.LINES_SCHEMA``) that pass the fast checks
        (``duckdb_sql.checked_lines``); return the positions (``n``) of those that do not."""

    def stage(self, rows: pa.Table) -> None:
        """Accept a batch in ``lines.STAGE_SCHEMA``."""

    def quarantine(self, rows: pa.Table) -> None:
        """Accept quarantine rows in ``batches.QUARANTINE_SCHEMA``."""

    def finish(self) -> Outcome:
        """Apply whatever is staged and return the totals."""


class Warehouse(Protocol):
    """A warehouse the landing code can write to and the asset checks, views and write-back
    query. ``connection`` is its DB-API connection (DuckDB's or snowflake-connector's), for
    streaming reads through a cursor."""

    dialect: Dialect
    connection: Any

    def fetch(self, query: str) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""

    def open_landing(
        self, table: str, provenance: Provenance, *, history: bool = False
    ) -> AbstractContextManager[LandingSession]:
        """Create ``fhir_raw.<table>`` and the quarantine table (and with ``history``,
        ``fhir_raw.<table>_history``) if needed; start a landing."""


class WarehouseOpener(Protocol):
    """A Dagster resource that opens a landing warehouse (``DuckDBWarehouseResource``,
    ``SnowflakeWarehouseResource``)."""

    def open_warehouse(self, *, landing: bool = True) -> AbstractContextManager[Warehouse]:
        """An open warehouse, closed when the block ends; ``landing=False`` for queries
        (views, checks, write-back) that need no landing memory bound."""
