"""Pages fetched from the server are spooled to local NDJSON files before they are landed.

The DuckDB file admits one writer process at a time, and a read-only connection elsewhere (a
notebook) blocks writers too. Paging a server takes minutes; landing the same pages takes
seconds. So a raw sync pages into a temporary folder first, holding no lock, and opens the
warehouse only to land what it spooled: the lock is held for the short write, not the fetch.
Spooled files live on local disk (memory stays bounded whatever the server holds) and are
deleted when the sync ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..warehouse.batches import Entry


@dataclass(slots=True)
class Spool:
    """NDJSON files under ``folder``, one per fetched page (so entries keep their page source)."""

    folder: Path
    pages: list[tuple[str, Path]] = field(default_factory=list)
    resources: int = 0
    bytes: int = 0

    def write(self, source: str, resources: Iterable[dict[str, Any]]) -> None:
        """Write one page's resources as JSON lines; ``source`` names the page for quarantine."""
        path = self.folder / f"page-{len(self.pages) + 1:06d}.ndjson"
        with path.open("wb") as stream:
            for resource in resources:
                line = orjson.dumps(resource) + b"\n"
                stream.write(line)
                self.resources += 1
                self.bytes += len(line)
        self.pages.append((source, path))

    def entries(self) -> Iterator[Entry]:
        """``(page source, position, line bytes)`` for every spooled resource, in fetch order."""
        for source, path in self.pages:
            with path.open("rb") as lines:
                for position, line in enumerate(lines, 1):
                    yield (source, position, line)
