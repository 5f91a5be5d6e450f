"""Time windows and the searches that select them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ConfigurationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_instant(moment: datetime) -> str:
    """UTC ``YYYY-MM-DDThh:mm:ss.sssZ``; sekmet compares some instants as plain strings."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open time window ``[start, end)``, both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ConfigurationError("window bounds must be timezone-aware (UTC)")
        if not self.start < self.end:
            raise ConfigurationError(f"empty window: {self}")

    def __str__(self) -> str:
        return f"[{format_instant(self.start)}, {format_instant(self.end)})"

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def params(self, name: str = "_lastUpdated") -> list[tuple[str, str]]:
        """The two search parameters selecting this window (AND of a repeated parameter)."""
        return [(name, "ge" + format_instant(self.start)), (name, "lt" + format_instant(self.end))]

    def halves(self) -> tuple[Window, Window]:
        """Two windows covering this one, cut at the middle (whole milliseconds)."""
        middle = self.start + self.span / 2
        middle = middle.replace(microsecond=middle.microsecond // 1000 * 1000)
        return Window(self.start, middle), Window(middle, self.end)

    def pieces(self, step: timedelta) -> list[Window]:
        """Consecutive windows of ``step`` (the last may be shorter) covering this one."""
        if step <= timedelta(0):
            raise ConfigurationError(f"a window step must be positive, not {step}")
        starts = [self.start]
        while starts[-1] + step < self.end:
            starts.append(starts[-1] + step)
        return [Window(s, min(s + step, self.end)) for s in starts]


@dataclass(frozen=True, slots=True)
class Query:
    """One search: a type, fixed parameters, and the window with the parameter that selects it."""

    resource_type: str
    params: tuple[tuple[str, str], ...] = ()
    window: Window | None = None
    window_param: str = "_lastUpdated"

    def search_params(self, page_size: int) -> list[tuple[str, str]]:
        windowed = self.window.params(self.window_param) if self.window else []
        return [*self.params, *windowed, ("_count", str(page_size))]
