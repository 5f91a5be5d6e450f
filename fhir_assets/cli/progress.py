"""Progress bars for long commands (resources, MB, rate, ETA) on stderr, via ``rich``.

Only when stderr is a terminal: piped or captured output (scripts, CI, tests) stays exactly the
plain table it was. ``rich`` is imported only then, so quiet runs do not pay for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


def enabled() -> bool:
    """Whether to draw bars: stderr is a terminal (``FHIR_ASSETS_PROGRESS=0`` turns them off)."""
    import os

    if os.environ.get("FHIR_ASSETS_PROGRESS", "") in ("0", "false", "no"):
        return False
    return sys.stderr.isatty()


class Bars:
    """A set of bars; every method is a no-op when bars are off.

    A task counts ``completed`` in its unit (bytes, resources or files) and carries a
    ``resources`` field, shown with its rate next to the bar.
    """

    def __init__(self, progress: Any = None) -> None:
        self._progress = progress
        self._started: dict[int, float] = {}

    @property
    def shown(self) -> bool:
        """Whether bars are drawn."""
        return self._progress is not None

    def add(self, description: str, total: float | None = None, **fields: Any) -> int:
        """A new bar (``total`` ``None``: no ETA); returns its id."""
        if self._progress is None:
            return 0
        task = int(self._progress.add_task(description, total=total, resources=0, **fields))
        self._started[task] = time.monotonic()
        return task

    def advance(self, task: int, amount: float = 0, resources: int = 0, **fields: Any) -> None:
        """Move a bar by ``amount`` units and ``resources`` resources."""
        if self._progress is None:
            return
        done = self._progress.tasks[self._index(task)].fields.get("resources", 0) + resources
        self._progress.update(task, advance=amount, resources=done, **fields)

    def finish(self, task: int) -> None:
        """Mark a bar complete (its total becomes what was done)."""
        if self._progress is None:
            return
        bar = self._progress.tasks[self._index(task)]
        self._progress.update(task, total=bar.completed)

    def log(self, message: str) -> None:
        """A line above the bars (plain ``stderr`` when bars are off)."""
        if self._progress is None:
            print(message, file=sys.stderr)  # noqa: T201 - the CLI's own output
        else:
            self._progress.console.print(message, highlight=False, markup=False)

    def _index(self, task: int) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == task)


@contextmanager
def bars(unit: str = "bytes") -> Iterator[Bars]:
    """Bars counting ``unit`` (``bytes``: MB and MB/s; else a count), or no-op ``Bars``."""
    if not enabled():
        yield Bars()
        return
    from rich import progress as rp

    columns: list[Any] = [rp.TextColumn("{task.description:<16}"), rp.BarColumn(bar_width=20)]
    if unit == "bytes":
        columns += [rp.DownloadColumn(), rp.TransferSpeedColumn()]
    else:
        columns += [rp.MofNCompleteColumn(), rp.TextColumn(unit)]
    columns += [_resources_column(), rp.TimeRemainingColumn()]
    with rp.Progress(*columns, console=_console(), transient=False) as progress:
        with _logging_through():
            yield Bars(progress)


@contextmanager
def _logging_through() -> Iterator[None]:
    """Route the root logger's stream handlers to ``sys.stderr`` as rich redirects it, so a
    library warning prints above the bars instead of inside one."""
    import logging

    handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    streams = [h.setStream(sys.stderr) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            if stream is not None:
                handler.setStream(stream)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _resources_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class ResourcesColumn(ProgressColumn):
        """``1,234 res 456/s``: resources so far and their rate."""

        def render(self, task: Any) -> Text:
            count = int(task.fields.get("resources", 0))
            elapsed = task.finished_time if task.finished else task.elapsed
            rate = f" {count / elapsed:,.0f}/s" if elapsed else ""
            return Text(f"{count:,} res{rate}")

    return ResourcesColumn()


def counted_blocks(blocks: Iterable[Any], bars: Bars, task: int) -> Iterator[Any]:
    """``blocks`` (``warehouse.batches.Block``) passed through, moving ``task`` by their bytes
    and lines (one resource per NDJSON line)."""
    for block in blocks:
        yield block
        data = getattr(block, "data", None)  # an over-long line comes as an entry, not a block
        if data is not None:
            bars.advance(task, len(data), data.count(b"\n"))
