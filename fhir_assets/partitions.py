"""Time partitions of the raw assets, and the searches one partition (or a range) runs.

A partition is the ``_lastUpdated`` window ``[start, end)`` of one day (or hour), in UTC. The
first partition also holds everything older than the start date, so history is never orphaned.
Rows are merged by id, not replaced per partition, so no partition filter is needed. A window ending
less than ``lag`` before now is cut at ``now - lag``: servers commit writes with a lastUpdated a
little in the past, and the schedule only runs complete partitions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from .fhir.errors import ConfigurationError
from .fhir.window import EPOCH, Window

DAILY_FORMAT = "%Y-%m-%d"
HOURLY_FORMAT = "%Y-%m-%d-%H:%M"


@dataclass(frozen=True, slots=True)
class Partitioning:
    """How the raw assets are partitioned (from ``FHIR_SYNC_*``; see definitions.py).

    Attributes:
        start: the first partition's start (UTC); older resources belong to the first partition.
        hourly: hourly partitions instead of daily ones.
        lag: windows are not synced closer than this to now.
        now: the clock (injected by tests).
    """

    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    hourly: bool = False
    lag: timedelta = timedelta(minutes=10)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), compare=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ConfigurationError("the partition start must be timezone-aware (UTC)")
        if not timedelta(0) <= self.lag < timedelta(minutes=55):
            raise ConfigurationError(f"the sync lag must be under 55 minutes, not {self.lag}")

    @property
    def unit(self) -> timedelta:
        return timedelta(hours=1) if self.hourly else timedelta(days=1)

    @property
    def fmt(self) -> str:
        return HOURLY_FORMAT if self.hourly else DAILY_FORMAT

    def partitions_def(self) -> dg.TimeWindowPartitionsDefinition:
        """Daily (or hourly) UTC partitions; ``end_offset=1`` shows the running one too."""
        cls = dg.HourlyPartitionsDefinition if self.hourly else dg.DailyPartitionsDefinition
        return cls(start_date=self.start.strftime(self.fmt), timezone="UTC", end_offset=1)

    def window(self, start: datetime, end: datetime) -> Window:
        """The window to search for the partition range ``[start, end)``.

        Raises:
            dagster.Failure: the range lies entirely within ``lag`` of now (not complete yet).
        """
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        first = EPOCH if start <= self.start else start
        cutoff = self.now() - self.lag
        if end > cutoff:
            end = cutoff.replace(microsecond=cutoff.microsecond // 1000 * 1000)
        if end <= first:
            raise dg.Failure(
                f"partition [{start.isoformat()}, ...) has not started {self.lag} ago yet; "
                "it is synced once complete"
            )
        return Window(first, end)

    def pieces(self, window: Window) -> list[Window]:
        """One window per partition unit (the history before ``start`` is one piece): how ranges
        were searched before adaptive windows (``bench/backfill.py`` compares the two)."""
        if window.start < self.start < window.end:
            return [
                Window(window.start, self.start),
                *Window(self.start, window.end).pieces(self.unit),
            ]
        if window.start >= self.start:
            return window.pieces(self.unit)
        return [window]

    def newest_complete_key(self, at: datetime) -> str | None:
        """The key of the newest partition that ended at least ``lag`` before ``at``."""
        moment = at.astimezone(UTC) - self.lag
        if self.hourly:
            end = moment.replace(minute=0, second=0, microsecond=0)
        else:
            end = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        start = end - self.unit
        return start.strftime(self.fmt) if start >= self.start else None


def backfill_condition() -> dg.AutomationCondition:
    """When a raw partition is (re)synced by ``fhir_raw_backfill_sensor``: it is missing or its
    last run failed, it is complete (not the latest, still-running window), and no queued or
    running run or backfill targets it. The sensor emits what it finds as one Dagster backfill,
    which the single-run backfill policy runs as one run per range."""
    condition = dg.AutomationCondition
    return (
        ~condition.in_latest_time_window()
        & (condition.missing() | condition.execution_failed())
        & ~condition.in_progress()
    ).with_label("missing or failed, complete, not in flight")


def sync_windows(
    partitioning: Partitioning | None, time_window: tuple[datetime, datetime] | None, now: datetime
) -> tuple[Window, list[Window]]:
    """The window a run covers and the windows it searches.

    Unpartitioned runs cover the whole history up to ``now``; partitioned runs their partition
    or partition range (a single-run backfill), cut at ``now - lag``. Either way the run starts
    from **one** window: the search splits it by time only where the server's count exceeds the
    profile's budget (``fhir.search``), so a year of daily partitions costs about as many
    requests as its pages, not one search per day and type. Dagster still records every
    partition of the range.
    """
    if partitioning is None or time_window is None:
        whole = Window(EPOCH, now)
        return whole, [whole]
    whole = partitioning.window(*time_window)
    return whole, [whole]


@contextmanager
def single_run_backfills() -> Iterator[None]:
    """Silence only Dagster's BetaWarning about ``backfill_policy`` while a raw asset is defined.

    Single-run backfills (``BackfillPolicy.single_run()``) are the documented way to run a
    partition range in one run (PITFALLS.md), and the parameter is beta in dagster 1.13: without
    this, every process that loads the code location prints the warning once per asset (23
    times for ``make demo``). Scoped to the decorator call: every other warning, Dagster's
    deprecations included, still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning
        )
        yield
