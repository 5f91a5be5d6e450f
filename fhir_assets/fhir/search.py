"""Windowed search: every resource changed in ``[start, end)``, nothing lost under faults or writes.

A window is searched with ``_lastUpdated=ge{start}&_lastUpdated=lt{end}`` (never a strict ``gt``
watermark, which misses records sharing the boundary instant). Paging follows ``next`` links
(:meth:`FhirClient.search_pages` stops on a repeated link with :class:`PagingError`). A window is

* **split** in two by time, recursively, while its ``Bundle.total`` exceeds the profile's
  threshold (servers such as HAPI cap how deep offset paging goes);
* **restarted** when the server answers 410 Gone (its paging cursor expired), at most
  ``profile.max_restarts`` times, then :class:`PagingError`;
* **re-paged** when its total changed while it was paged (offset paging skips rows when an update
  or delete moves one out of the window mid-pull), at most ``profile.max_restarts`` times.

A resource can therefore be yielded more than once (never zero times): consumers keep the latest
version per id (:func:`keep_latest`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from .client import FhirClient, Page, redact
from .errors import PagingError, RequestError, TransientRequestError
from .parallel import run_parallel
from .profiles import ServerProfile
from .window import EPOCH, Query, Window

log = logging.getLogger(__name__)

Resource = dict[str, Any]


class SyncStats:
    """Counters of one sync (thread-safe) for materialization metadata."""

    FIELDS = ("fetched", "pages", "windows", "splits", "restarts", "repages", "outside_window")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def __getitem__(self, name: str) -> int:
        return self.counts[name]


def search_window(
    client: FhirClient, query: Query, profile: ServerProfile, stats: SyncStats
) -> Iterator[list[Resource]]:
    """Yield the matches of ``query`` page by page, splitting, restarting and re-paging as needed.

    Raises:
        PagingError: a repeated ``next`` link, or a window that kept expiring or changing.
        RequestError: any other failed request (after the client's retries).
    """
    pages = _stable_pages(client, query, profile, stats)
    first = next(pages, None)
    if first is None:
        return
    window = query.window
    if window is not None and _too_big(first, window, profile):
        pages.close()
        stats.add("splits")
        log.info(
            "%s %s holds %s resources: splitting", query.resource_type, query.window, first.total
        )
        for half in window.halves():
            yield from search_window(client, replace(query, window=half), profile, stats)
        return
    stats.add("windows")
    for page in itertools.chain((first,), pages):
        stats.add("pages")
        stats.add("fetched", len(page.resources))
        if window is not None:
            stats.add("outside_window", outside(page.resources, window))
        yield page.resources


def outside(resources: Iterable[Resource], window: Window) -> int:
    """How many resources carry a ``meta.lastUpdated`` outside ``window`` (a server clock or
    data in the future). They land as sent, and are counted in metadata (``outside_window``);
    nothing derives a cursor or a partition from them."""
    count = 0
    for resource in resources:
        updated = _version_key(resource)[0]
        if updated != EPOCH and not window.start <= updated < window.end:
            count += 1
    return count


def _too_big(first: Page, window: Window, profile: ServerProfile) -> bool:
    return (
        profile.split_threshold is not None
        and first.total is not None
        and first.total > profile.split_threshold
        # halves are cut at whole milliseconds, the resolution of the instants sent
        and window.span / 2 >= max(profile.min_window, timedelta(milliseconds=1))
    )


def _stable_pages(
    client: FhirClient, query: Query, profile: ServerProfile, stats: SyncStats
) -> Generator[Page, None, None]:
    """Page through a query; restart on 410, re-page while the window's total moves."""
    for _ in range(profile.max_restarts + 1):
        total: int | None = None
        try:
            for page in client.search_pages(
                query.resource_type, query.search_params(profile.page_size)
            ):
                total = page.total if total is None else total
                yield page
        except RequestError as exc:
            if exc.status != 410:
                raise
            stats.add("restarts")
            log.warning(
                "%s %s: paging cursor expired (410), restarting", query.resource_type, query.window
            )
            continue
        counted = _count(client, query) if total is not None and query.window else None
        if counted is None or counted == total:
            return
        stats.add("repages")
        log.warning("%s %s changed while paged, paging again", query.resource_type, query.window)
    raise PagingError(
        f"{query.resource_type} {query.window}: gave up after {profile.max_restarts} restarts "
        f"(the paging cursor kept expiring or the window kept changing); retry the partition"
    )


def _count(client: FhirClient, query: Query) -> int | None:
    """The window's current total, or ``None`` when the server cannot say (no verification)."""
    params = [*query.params, *(query.window.params(query.window_param) if query.window else [])]
    try:
        bundle = client.get(query.resource_type, [*params, ("_summary", "count")])
    except TransientRequestError:
        raise
    except RequestError as exc:
        log.warning(
            "%s: _summary=count refused (%s); window not verified", query.resource_type, exc
        )
        return None
    total = bundle.get("total")
    return total if isinstance(total, int) else None


def keep_latest(
    resources: Iterable[Resource], into: dict[str, Resource] | None = None
) -> dict[str, Resource]:
    """Deduplicate by ``id``, keeping the latest ``meta.lastUpdated`` (then ``versionId``)."""
    latest = {} if into is None else into
    for resource in resources:
        key = str(resource.get("id"))
        held = latest.get(key)
        if held is None or _version_key(resource) >= _version_key(held):
            latest[key] = resource
    return latest


def _version_key(resource: Mapping[str, Any]) -> tuple[datetime, int]:
    meta = resource.get("meta") or {}
    try:
        updated = datetime.fromisoformat(str(meta.get("lastUpdated")).replace("Z", "+00:00"))
    except ValueError:
        updated = EPOCH
    version = str(meta.get("versionId", ""))
    return updated, int(version) if version.isdigit() else 0


class WindowSync:
    """Searches many queries with a bounded pool of workers and counts what happened.

    Args:
        client: the client (its rate limit and retries are shared by all workers).
        profile: the server profile (page size, splitting, restarts, default workers).
        workers: parallel searches; ``profile.workers`` when ``None``.
    """

    def __init__(
        self, client: FhirClient, profile: ServerProfile, *, workers: int | None = None
    ) -> None:
        self.client = client
        self.profile = profile
        self.workers = workers or profile.workers
        self.stats = SyncStats()
        self.started = time.monotonic()

    def pages(self, queries: Sequence[Query]) -> Iterator[list[Resource]]:
        """Every page of every query, in completion order (pages of one query stay in order)."""
        self.started = time.monotonic()
        yield from run_parallel(
            [partial(search_window, self.client, q, self.profile, self.stats) for q in queries],
            workers=self.workers,
        )

    def metadata(self) -> dict[str, Any]:
        """Counts, retries, throttling, server and speed (fetched, duplicates included)."""
        seconds = time.monotonic() - self.started
        limit = self.client.rate_limit
        return {
            **self.stats.counts,
            "retries": self.client.stats.retries,
            "retry_wait_s": round(self.client.stats.retry_wait_s, 3),
            "throttled_s": round(limit.throttled_s, 3) if limit else 0.0,
            "server": redact(self.client.base_url),
            "server_profile": self.profile.name,
            "duration_s": round(seconds, 3),
            "resources_per_s": round(self.stats["fetched"] / seconds, 1) if seconds else 0.0,
        }
