"""How transient failures are retried, and the counters the sync reports about them.

:meth:`RetryPolicy.run` is the library's one retry loop: searches and reads, Bulk Data kick-off,
status polls and files, write-back transactions and token requests all go through it. The
transport itself never retries (the session's adapters have ``max_retries=0``), so no second,
hidden policy multiplies the attempts; a transient status becomes a :class:`BusyError` carrying
the server's ``Retry-After`` (:func:`retry_after`), which ``run`` honours up to its cap.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from .errors import TransientRequestError

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
        jitter: bool = False,
    ) -> T:
        """The library's one retry loop (module doc): searches and reads, Bulk Data, write-back
        transactions and token requests.

        The wait is the error's ``wait_s`` (a server's ``Retry-After``, capped at ``max_wait_s``,
        default ``max_backoff_s``) or :meth:`backoff`.

        Args:
            attempt: one try; raises one of ``retry_on`` to be tried again.
            attempts: retries after the first try (default ``self.attempts``).
            sleep: how to wait (default ``self.sleep``).
            stop: when it answers true, the error is raised at once (an interrupted export).
            before_sleep: called with the error and the wait before each retry (a log line).
            jitter: add up to ``backoff_s`` at random to a backoff (not to a server's
                ``Retry-After``), so many workers failing together do not retry together.

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
                if asked is not None:
                    wait = min(float(asked), cap)
                else:
                    spread = random.uniform(0, self.backoff_s) if jitter else 0.0  # noqa: S311
                    wait = min(self.backoff(failures) + spread, self.max_backoff_s)
                if before_sleep is not None:
                    before_sleep(exc, wait)
                (sleep or self.sleep)(wait)


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


def retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds a server asks to wait (``Retry-After`` as delay-seconds or HTTP-date, RFC 9110
    10.2.3, measured against the server's ``Date`` when it sends one); ``None`` without a
    readable header (then the policy's backoff applies). Callers cap it."""
    value = (headers.get("Retry-After") or "").strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes "²", which float() refuses
        return float(value)
    if not value:
        return None
    try:
        target = parsedate_to_datetime(value).timestamp()
        server_now = headers.get("Date")
        clock = parsedate_to_datetime(server_now).timestamp() if server_now else now()
    except (TypeError, ValueError):
        return None
    return max(0.0, target - clock)
