"""A client-side request-rate limit shared by every thread of a sync, and a transport that obeys it.

The mechanics are pyrate-limiter's (a sliding-window log, thread-safe); this module adds the
accounting the sync reports: how many seconds requests waited for a permit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from .errors import ConfigurationError


def rate_for(requests_per_s: float) -> Rate:
    """A pyrate-limiter ``Rate`` for a (possibly fractional) number of requests per second."""
    if requests_per_s <= 0:
        raise ConfigurationError(f"a rate limit must be positive, not {requests_per_s}")
    if requests_per_s >= 1:
        return Rate(round(requests_per_s), Duration.SECOND)
    return Rate(1, round(1000 / requests_per_s))


class RateLimit:
    """At most ``requests_per_s`` requests per second across all threads that share this object.

    Args:
        requests_per_s: the permitted rate.
        clock: monotonic seconds (injectable for accounting tests).

    Attributes:
        throttled_s: total seconds callers waited for a permit.
    """

    def __init__(
        self, requests_per_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.requests_per_s = requests_per_s
        self._limiter = Limiter(InMemoryBucket([rate_for(requests_per_s)]))
        self._clock = clock
        self._lock = threading.Lock()
        self.throttled_s = 0.0

    def __repr__(self) -> str:
        return f"RateLimit({self.requests_per_s}/s)"

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited."""
        started = self._clock()
        self._limiter.try_acquire("fhir", blocking=True)
        waited = max(0.0, self._clock() - started)
        with self._lock:
            self.throttled_s += waited
        return waited


class RateLimitedAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that takes a permit from a :class:`RateLimit` per send.

    urllib3's retries happen inside ``send``, after the permit; their backoff already spaces them.
    """

    def __init__(self, rate_limit: RateLimit | None = None, **kwargs: Any) -> None:
        self.rate_limit = rate_limit
        super().__init__(**kwargs)

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        return super().send(request, *args, **kwargs)
