"""Kick-off, status polling and deletion of a Bulk Data export (HL7 Bulk Data Access IG v2).

:class:`BulkClient` wraps a :class:`FhirClient` and sends through the client's own session (one
session per server: its auth, profile headers, rate limit and redirect rules), whose transport
never retries by itself: every retry is the client's :class:`~fhir_assets.fhir.retry.RetryPolicy`,
every wait is decided by the server's ``Retry-After`` (capped) and done through the injected
``sleep``, so tests run instantly and a sensor can poll once per tick with :meth:`BulkClient.poll`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin

import orjson
import requests

from ..client import FHIR_JSON, FhirClient, decode, redact
from ..errors import ConfigurationError, RequestError, ResponseFormatError, TransientRequestError
from ..ratelimit import RateLimit, shared_rate_file
from ..retry import TRANSIENT_STATUSES, BusyError, retry_after
from ..urls import require_https, require_same_origin
from .answers import refusal, too_soon, transient_failure
from .manifest import (
    ExportError,
    ExportGoneError,
    ExportJob,
    ExportRequest,
    Manifest,
    next_link,
)
from .options import BulkOptions

log = logging.getLogger(__name__)
T = TypeVar("T")
PROGRESS_CHARS = 120


@dataclass(frozen=True, slots=True)
class Pending:
    """The export is still running (or the status endpoint asked us to wait)."""

    progress: str | None
    wait_s: float
    status: int | None


class BulkClient:
    """Runs exports against one FHIR server.

    Args:
        client: the server's client; its auth decides where the token goes (server origin only).
        options: waits, caps and parallelism.
        now: clock (seconds since the epoch), injectable for tests.
        sleep: how to wait, injectable for tests.
    """

    def __init__(
        self,
        client: FhirClient,
        options: BulkOptions | None = None,
        *,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.options = options or BulkOptions()
        if client.profile is not None and client.profile.bulk_group_only:
            # the vendor exports only Group/{id} (Epic, Oracle Health): from the client's profile
            self.options = dataclasses.replace(self.options, group_only=True)
        self.now = now
        self.sleep = sleep
        self.stopping = threading.Event()
        self._streams: set[requests.Response] = set()
        self._streams_lock = threading.Lock()
        # One request budget per server for every export and sync on the machine (as the REST
        # path does): the client's own if it has one, else one shared through a file.
        if client.rate_limit is None:
            shared = shared_rate_file(client.base_url)
            client.use_rate_limit(RateLimit(self.options.requests_per_s, shared_file=shared))
        self.rate_limit = client.rate_limit
        # One session per server: the client's (issue 23), pooled wide enough for the downloads.
        client.widen_pool(self.options.max_connections + 2)
        self.session = client.session

    def close(self) -> None:
        """Release pooled connections (the session stays the client's, usable afterwards)."""
        self.session.close()

    def streaming(self, response: requests.Response | None, *, done: bool = False) -> None:
        """Register (or, ``done``, forget) a download under way, for :meth:`abort`."""
        if response is None:
            return
        with self._streams_lock:
            (self._streams.discard if done else self._streams.add)(response)

    def abort(self) -> None:
        """Stop every download under way now (Ctrl-C, SIGTERM): no new one starts, and the
        sockets of those in flight are shut, so their threads end within a second, whatever
        the server sends (a trickle would otherwise hold a read for the whole timeout). Their
        ``.part`` files stay: a rerun resumes them."""
        self.stopping.set()
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            connection = getattr(response.raw, "connection", None)
            sock = getattr(connection, "sock", None)
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> BulkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kick_off(self, request: ExportRequest) -> ExportJob:
        """Start an export; ``patient`` lists go in a POSTed Parameters body (IG v2 kick-off).

        Raises:
            ExportTooSoonError: the server refuses because this group was exported too recently.
            ExportError: the server refused the request (the message carries its issues).
            ConfigurationError: ``group_only`` is set and the request is not group level.
            TransientRequestError: the server stayed unreachable or busy after every retry.
        """
        if self.options.group_only and request.level != "group":
            raise ConfigurationError(
                f"this server exports only at group level (Epic, Oracle Health), not "
                f"{request.level} level: configure the group id the vendor set up for this client"
            )
        url = self.client.url(request.path)
        prefer = "respond-async" + (", handling=lenient" if self.options.lenient else "")
        headers = {"Prefer": prefer, "Accept": FHIR_JSON}
        join = self.options.join_types

        def attempt() -> ExportJob:
            if request.patients:
                body = orjson.dumps(request.parameters(join_types=join))
                response = self._send(
                    "POST", url, data=body, headers=headers | {"Content-Type": FHIR_JSON}
                )
            else:
                params = request.params(join_types=join)
                response = self._send("GET", url, params=params, headers=headers)
            if response.status_code == 202:
                return self._job(url, response)
            if response.status_code in TRANSIENT_STATUSES and not too_soon(response):
                raise self._busy(response)
            raise refusal(request, response)

        try:
            return self._retry(attempt)
        except BusyError as exc:
            raise refusal(request, exc.response) from None

    def poll(self, job: ExportJob) -> Pending | Manifest:
        """Ask once how the export is doing; returns the full manifest (all pages) when done.

        429, transient 5xx and dropped connections are "wait" answers, not failures.

        Raises:
            ExportError: the export failed, or the server no longer knows the job.
        """
        try:
            response = self._send("GET", job.status_url, headers={"Accept": "application/json"})
        except TransientRequestError:
            return Pending(None, self.options.default_wait_s, None)
        status = response.status_code
        if status == 202:
            # free text from the server (IG v2): cut, it reaches messages and progress displays
            progress = (response.headers.get("X-Progress") or "")[:PROGRESS_CHARS] or None
            return Pending(progress, self.wait_for(response), status)
        if status == 200:
            return self._manifest(response)
        if status == 429 or (status >= 500 and transient_failure(response)):
            return Pending(None, self.wait_for(response), status)
        try:
            decode(response)
        except RequestError as exc:
            gone = status in (404, 410)
            raise (ExportGoneError if gone else ExportError)(
                f"export at {redact(job.status_url)} failed: HTTP {status}"
                f"{' (the job expired, was deleted, or the server restarted)' if gone else ''}: "
                f"{'; '.join(exc.issues) or 'no OperationOutcome'}",
                issues=exc.issues,
            ) from exc
        raise ExportError(f"export status answered HTTP {status}, neither 200 nor 202")

    def wait(self, job: ExportJob, on_pending: Callable[[Pending], None] | None = None) -> Manifest:
        """Poll until the manifest is ready, sleeping as the server asks (capped).

        Raises:
            ExportError: the export failed or did not finish within ``total_timeout_s``.
        """
        deadline = job.started_at + self.options.total_timeout_s
        last: Pending | None = None
        while True:
            result = self.poll(job)
            if isinstance(result, Manifest):
                return result
            result = self._spaced(result, last)
            last = result
            if on_pending is not None:
                on_pending(result)
            if self.now() + result.wait_s > deadline:
                raise ExportError(
                    f"export at {redact(job.status_url)} not complete "
                    f"{self.options.total_timeout_s:g}s after kick-off "
                    f"(last progress: {result.progress or 'none reported'})"
                )
            self.sleep(result.wait_s)

    def _spaced(self, pending: Pending, last: Pending | None) -> Pending:
        """``pending`` with its wait raised to ``min_poll_s`` and, while the job reports the
        same progress as last time, to ``poll_backoff`` times the last wait (capped)."""
        wait = max(pending.wait_s, self.options.min_poll_s)
        if last is not None and (last.progress, last.status) == (pending.progress, pending.status):
            wait = max(wait, last.wait_s * self.options.poll_backoff)
        return Pending(
            pending.progress, min(wait, max(self.options.max_wait_s, 0.0)), pending.status
        )

    def delete(self, job: ExportJob) -> bool:
        """DELETE the job (done, failed or cancelled): Epic allows one open export per client and
        group. Returns whether the server confirmed (404: it was already gone)."""

        def attempt() -> requests.Response:
            response = self._send("DELETE", job.status_url)
            if response.status_code in TRANSIENT_STATUSES:
                raise self._busy(response, cap=30.0)
            return response

        try:
            response = self._retry(attempt, attempts=2)
        except TransientRequestError:
            log.warning("could not DELETE export job %s", redact(job.status_url))
            return False
        ok = response.status_code < 300 or response.status_code == 404
        if response.status_code == 403:
            # sekmet (the sandbox) wants a delete scope (system/*.*) to DELETE a job; servers
            # differ here. The job then stays until the server expires it. One warning.
            log.warning(
                "the server refused to DELETE export job %s (HTTP 403): the token's scopes "
                "do not allow it (ask for system/*.* to clean up); the server will expire "
                "the job itself",
                redact(job.status_url),
            )
            return False
        log.log(
            logging.INFO if ok else logging.WARNING,
            "DELETE %s answered HTTP %s",
            redact(job.status_url),
            response.status_code,
        )
        return ok

    def wait_for(self, response: requests.Response) -> float:
        """Seconds to wait per ``Retry-After`` (delay-seconds or HTTP-date, RFC 9110 10.2.3),
        capped at ``max_wait_s``; ``default_wait_s`` without the header."""
        wait = retry_after(response.headers, self.now)
        if wait is None:
            wait = self.options.default_wait_s
            if response.headers.get("Retry-After"):
                log.warning(
                    "unreadable Retry-After %r; waiting %ss", response.headers["Retry-After"], wait
                )
        return min(wait, self.options.max_wait_s)

    def _busy(self, response: requests.Response, cap: float | None = None) -> BusyError:
        """A transient answer as an error :meth:`_retry` waits on (its capped Retry-After)."""
        wait = self.wait_for(response)
        return BusyError(
            f"{response.request.method} {redact(response.url)} answered HTTP "
            f"{response.status_code}",
            url=redact(response.url),
            wait_s=wait if cap is None else min(wait, cap),
            response=response,
        )

    def _retry(self, attempt: Callable[[], T], attempts: int | None = None) -> T:
        """``attempt`` under the client's one :class:`RetryPolicy` (``options.attempts``
        retries, this client's ``sleep``, waits capped at ``options.max_wait_s``)."""
        return self.client.retry.run(
            attempt,
            attempts=self.options.attempts if attempts is None else attempts,
            sleep=self.sleep,
            max_wait_s=self.options.max_wait_s,
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.client.timeout)
        require_https(url, f"export {method} target")
        try:
            return self.session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise TransientRequestError(
                f"{method} {redact(url)} failed: {type(exc).__name__}", url=redact(url)
            ) from exc

    def _job(self, url: str, response: requests.Response) -> ExportJob:
        location = response.headers.get("Content-Location")
        if not location:
            raise ResponseFormatError(
                f"{redact(url)} accepted the export (202) without a Content-Location", status=202
            )
        job = ExportJob(urljoin(url, location), self.now())
        log.info("export kicked off at %s; status at %s", redact(url), redact(job.status_url))
        return job

    def _manifest(self, response: requests.Response) -> Manifest:
        body = decode(response)
        manifest = Manifest.from_json(body)
        seen: set[str] = set()
        limit = self.client.limits.max_pages
        while (link := next_link(body)) is not None:
            # manifest pages come from the FHIR server itself, never from elsewhere
            url = require_same_origin(urljoin(response.url, link), response.url, "manifest link")
            if url in seen:
                raise ResponseFormatError(f"manifest paging repeated {redact(url)}")
            if len(seen) >= limit:  # fresh links forever: bounded like a search's pages
                raise ResponseFormatError(
                    f"the export manifest at {redact(response.url)} has more than {limit} pages "
                    f"(FHIR_MAX_PAGES_PER_SEARCH); the server keeps sending next links, stopping"
                )
            seen.add(url)
            body = self._get_json(url)
            manifest = manifest.with_files(Manifest.from_json(body).files)
        return manifest

    def _get_json(self, url: str) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            response = self._send("GET", url, headers={"Accept": "application/json"})
            if response.status_code in TRANSIENT_STATUSES:
                raise self._busy(response)
            return decode(response)

        try:
            return self._retry(attempt)
        except BusyError as exc:
            return decode(exc.response)
