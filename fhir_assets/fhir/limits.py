"""Bounds and deadlines on everything a server sends: every loop over server input ends.

One frozen :class:`Limits` per client, built once from the settings (``FHIR_*``, see
``fhir_assets.settings.LimitSettings`` and docs/security.md); each error names its setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import FhirError, PagingError
from .urls import redact


@dataclass(frozen=True, slots=True)
class Limits:
    """What a client tolerates from a server before it stops with an error naming the setting.

    Attributes:
        max_redirects: redirect hops followed per request (``FHIR_MAX_REDIRECTS``).
        max_pages: pages per search window (``FHIR_MAX_PAGES_PER_SEARCH``); a search also stops
            when a page repeats the ids of earlier pages, or past twice the pages its first
            page's ``Bundle.total`` needs (plus ``PAGE_SLACK``).
        search_deadline_s: seconds one search window may take (``FHIR_SEARCH_DEADLINE_S``).
        max_file_bytes: decompressed bytes per downloaded file (``FHIR_MAX_FILE_BYTES``).
        max_compression_ratio: decompressed bytes per byte received, once past
            ``RATIO_GRACE_BYTES``, of a file or a JSON answer (``FHIR_MAX_COMPRESSION_RATIO``).
        download_deadline_s: seconds one file download, or the body of one JSON answer, may
            take (``FHIR_DOWNLOAD_DEADLINE_S``).
        min_download_bytes_per_s: the slowest average a download or a JSON answer's body may
            keep after ``THROUGHPUT_GRACE_S`` (``FHIR_MIN_DOWNLOAD_BYTES_PER_S``).
        max_response_bytes: decompressed bytes of one JSON answer (a search page, a read, an
            export status, a token answer), which is held in memory (``FHIR_MAX_RESPONSE_BYTES``).
    """

    max_redirects: int = 5
    max_pages: int = 10_000
    search_deadline_s: float = 6 * 3600.0
    max_file_bytes: int = 20 * 1024**3
    max_compression_ratio: float = 200.0
    download_deadline_s: float = 6 * 3600.0
    min_download_bytes_per_s: float = 1024.0
    max_response_bytes: int = 1024**3


# Ratio and throughput are judged only after this much, so small files and slow starts pass.
RATIO_GRACE_BYTES = 1 << 20
THROUGHPUT_GRACE_S = 60.0
PAGE_SLACK = 5


class PageBound:
    """The bounds of one search (:class:`Limits`): pages, deadline, repeated links and ids."""

    def __init__(self, resource_type: str, limits: Limits, started: float) -> None:
        self.what = f"{resource_type} search"
        self.limits = limits
        self.deadline = started + limits.search_deadline_s
        self.pages = 0
        self.allowed = limits.max_pages
        self.links: set[str] = set()
        self.last_ids: frozenset[str] = frozenset()
        self.seen_pages: set[int] = set()  # a hash per page: memory stays O(pages)

    def check(self, page: Any) -> None:
        """Count ``page``; raise PagingError if it breaks a bound."""
        self.pages += 1
        # a total below the first page's own matches is no count (some servers send 0)
        if self.pages == 1 and page.total is not None and page.total >= len(page.resources):
            per_page = max(len(page.resources), 1)
            needed = math.ceil(page.total / per_page) if page.resources else page.total
            self.allowed = min(self.allowed, 2 * needed + PAGE_SLACK)
        if self.pages > self.allowed:
            raise PagingError(
                f"{self.what}: more than {self.allowed} pages (Bundle.total said {page.total}; "
                f"FHIR_MAX_PAGES_PER_SEARCH={self.limits.max_pages}); the server keeps sending "
                f"next links, stopping"
            )
        if page.next_url is not None:
            if page.next_url in self.links:
                raise PagingError(
                    f"{self.what}: the server repeated a next link ({redact(page.next_url)}); "
                    f"stopping instead of looping forever"
                )
            self.links.add(page.next_url)
        ids = frozenset(f"{r.get('resourceType')}/{r.get('id')}" for r in page.resources)
        if ids and (ids <= self.last_ids or hash(ids) in self.seen_pages):
            raise PagingError(
                f"{self.what}: page {self.pages} repeats the resources of an earlier page; the "
                f"server's paging loops, stopping"
            )
        self.last_ids = ids
        self.seen_pages.add(hash(ids))

    def tick(self, now: float) -> None:
        """Raise PagingError once the search has outlived its deadline."""
        if now > self.deadline:
            raise PagingError(
                f"{self.what}: still paging after {self.limits.search_deadline_s:g}s "
                f"(page {self.pages}; FHIR_SEARCH_DEADLINE_S); the window can be retried"
            )


class LimitError(FhirError):
    """A download broke a bound of :class:`Limits` (the message names the setting).

    Attributes:
        resumable: the bytes so far are good (a deadline or a slow server): keep them, a rerun
            resumes; ``False`` for size and ratio (the data itself is the problem).
    """

    def __init__(self, message: str, *, resumable: bool) -> None:
        super().__init__(message)
        self.resumable = resumable


class ByteMeter:
    """The bounds of one download: decompressed bytes, compression ratio, deadline, throughput.

    Args:
        what: the file, for messages (no query string).
        limits: the bounds.
        started: the monotonic time the download started.
        offset: bytes already on disk (a resumed download).
    """

    # the size bound and its setting, and what happens to the bytes read when time runs out
    size_setting = "FHIR_MAX_FILE_BYTES"
    kept = "; the bytes so far are kept, a rerun resumes"

    def __init__(self, what: str, limits: Limits, started: float, offset: int = 0) -> None:
        self.what, self.limits, self.started, self.offset = what, limits, started, offset
        self.decoded = 0
        self.max_bytes = limits.max_file_bytes

    def add(self, decoded: int, wire: int, now: float) -> None:
        """Count ``decoded`` more bytes (``wire``: bytes received in all, compressed).

        Raises:
            LimitError: naming the bound and its setting.
        """
        self.decoded += decoded
        limits = self.limits
        if self.offset + self.decoded > self.max_bytes:
            raise LimitError(
                f"{self.what}: more than {self.max_bytes} bytes once decompressed "
                f"({self.size_setting}); refusing the rest",
                resumable=False,
            )
        if self.decoded > RATIO_GRACE_BYTES and self.decoded > wire * limits.max_compression_ratio:
            raise LimitError(
                f"{self.what}: {self.decoded} bytes decompressed from {wire} received, a ratio "
                f"above FHIR_MAX_COMPRESSION_RATIO={limits.max_compression_ratio:g} (a "
                f"compression bomb?); refusing the rest",
                resumable=False,
            )
        self.tick(now, wire)

    def tick(self, now: float, wire: int) -> None:
        """Raise :class:`LimitError` past the deadline or below the minimum throughput."""
        elapsed = now - self.started
        if elapsed > self.limits.download_deadline_s:
            raise LimitError(
                f"{self.what}: not complete after {self.limits.download_deadline_s:g}s "
                f"(FHIR_DOWNLOAD_DEADLINE_S){self.kept}",
                resumable=True,
            )
        floor = self.limits.min_download_bytes_per_s
        if elapsed > THROUGHPUT_GRACE_S and wire < floor * elapsed:
            raise LimitError(
                f"{self.what}: {wire} bytes in {elapsed:.0f}s, slower than "
                f"FHIR_MIN_DOWNLOAD_BYTES_PER_S={floor:g}{self.kept}",
                resumable=True,
            )


class BodyMeter(ByteMeter):
    """The bounds of one JSON answer's body, read into memory (:mod:`fhir_assets.fhir.http`):
    ``max_response_bytes``, and the ratio, deadline and throughput of a download."""

    size_setting = "FHIR_MAX_RESPONSE_BYTES"
    kept = ""

    def __init__(self, what: str, limits: Limits, started: float) -> None:
        super().__init__(what, limits, started)
        self.max_bytes = limits.max_response_bytes
