"""How transient failures are retried, and the counters the sync reports about them.

urllib3's ``Retry`` does the status/connection retries inside the transport (backoff with jitter,
``Retry-After`` in seconds or HTTP-date, capped); tenacity retries GETs whose body broke off,
which urllib3 never sees because ``requests`` reads the body after the transport returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import tenacity
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from .errors import ResponseFormatError, TransientRequestError

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RequestStats:
    """Thread-safe counters of one client's traffic, for materialization metadata.

    Attributes:
        retries: requests repeated after a transient failure (status, connection or body).
        retry_wait_s: seconds slept before those retries (backoff or ``Retry-After``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.retries = 0
        self.retry_wait_s = 0.0

    def add_retry(self, waited_s: float) -> None:
        with self._lock:
            self.retries += 1
            self.retry_wait_s += waited_s


class CountingRetry(Retry):
    """urllib3 ``Retry`` that counts into :class:`RequestStats` and sleeps with an injected sleep.

    The retry decisions, exponential backoff with jitter and ``Retry-After`` parsing (seconds and
    HTTP-date, capped by ``retry_after_max``) are urllib3's own.
    """

    def __init__(
        self,
        *args: Any,
        stats: RequestStats | None = None,
        sleeper: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        self.stats = stats or RequestStats()
        self.sleeper = sleeper
        super().__init__(*args, **kwargs)

    def new(self, **kw: Any) -> Self:
        retry = super().new(**kw)
        retry.stats, retry.sleeper = self.stats, self.sleeper
        return retry

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None  # an unparseable Retry-After is treated as absent: plain backoff

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        delay = None
        if self.respect_retry_after_header and response is not None:
            delay = self.get_retry_after(response)
        if delay is None:
            delay = self.get_backoff_time()
        self.stats.add_retry(delay)
        if delay > 0:
            self.sleeper(delay)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried: backoff with jitter, ``Retry-After`` honoured.

    408/429/500/502/503/504 and connection errors are retried (idempotent methods only); GETs
    whose body arrives truncated or undecodable are retried too. Other 4xx fail at once.

    Attributes:
        attempts: retries after the first try.
        backoff_s: first backoff; doubles each retry.
        max_backoff_s: cap on any single wait, including a server's ``Retry-After``.
        sleep: how to wait (injected by tests).
    """

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure (from 1): doubling from
        ``backoff_s``, capped at ``max_backoff_s``."""
        return float(min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s))

    def run(
        self,
        attempt: Callable[[], T],
        *,
        retry_on: tuple[type[BaseException], ...] = (TransientRequestError,),
        attempts: int | None = None,
        sleep: Callable[[float], None] | None = None,
        max_wait_s: float | None = None,
        stop: Callable[[], bool] | None = None,
        before_sleep: Callable[[BaseException, float], None] | None = None,
    ) -> T:
        """The library's one retry loop for requests that answer with something urllib3 does not
        see (an export kick-off's 429, a file whose body broke off, a resent transaction).

        The wait is the error's ``wait_s`` (a server's ``Retry-After``, capped at ``max_wait_s``,
        default ``max_backoff_s``) or :meth:`backoff`.

        Args:
            attempt: one try; raises one of ``retry_on`` to be tried again.
            attempts: retries after the first try (default ``self.attempts``).
            sleep: how to wait (default ``self.sleep``).
            stop: when it answers true, the error is raised at once (an interrupted export).
            before_sleep: called with the error and the wait before each retry (a log line).

        Raises:
            the last error of ``retry_on`` once the retries are spent, or any other at once.
        """
        tries = self.attempts if attempts is None else attempts
        cap = self.max_backoff_s if max_wait_s is None else max_wait_s
        failures = 0
        while True:
            try:
                return attempt()
            except retry_on as exc:
                failures += 1
                if failures > tries or (stop is not None and stop()):
                    raise
                asked = getattr(exc, "wait_s", None)
                wait = self.backoff(failures) if asked is None else min(float(asked), cap)
                if before_sleep is not None:
                    before_sleep(exc, wait)
                (sleep or self.sleep)(wait)

    def to_urllib3(self, stats: RequestStats | None = None) -> CountingRetry:
        """The urllib3 ``Retry`` that implements this policy on a ``requests`` adapter."""
        return CountingRetry(
            total=self.attempts,
            status_forcelist=TRANSIENT_STATUSES,
            # GET and the idempotent verbs; a POSTed transaction is only retried by its caller.
            allowed_methods=frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
            backoff_factor=self.backoff_s,
            backoff_max=self.max_backoff_s,
            backoff_jitter=self.backoff_s,
            respect_retry_after_header=True,
            retry_after_max=self.max_backoff_s,
            raise_on_status=False,
            stats=stats,
            sleeper=self.sleep,
        )

    def body_retrying(self, stats: RequestStats) -> tenacity.Retrying:
        """Retries of a GET whose response body was cut or is not JSON (tenacity).

        urllib3 returns before the body is read, so its ``Retry`` never sees these failures.
        """
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((IncompleteBodyError, ResponseFormatError)),
            stop=tenacity.stop_after_attempt(self.attempts + 1),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.backoff_s, max=self.max_backoff_s, jitter=self.backoff_s
            ),
            sleep=self.sleep,
            before_sleep=lambda state: stats.add_retry(state.upcoming_sleep),
            reraise=True,
        )


class IncompleteBodyError(TransientRequestError):
    """The connection broke while the response body was being read (a truncated body)."""


class BusyError(TransientRequestError):
    """The server answered a transient status (429, 5xx); ``wait_s`` is its ``Retry-After``.

    Attributes:
        response: the answer (its body read), for the caller's message once retries are spent.
    """

    def __init__(self, message: str, *, url: str, wait_s: float, response: Any = None) -> None:
        super().__init__(message, url=url)
        self.wait_s = wait_s
        self.response = response
