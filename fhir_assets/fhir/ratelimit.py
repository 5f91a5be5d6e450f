"""A client-side request-rate limit shared by every thread of a sync, and a transport that obeys it.

The mechanics are pyrate-limiter's (a sliding-window log, thread-safe; with a shared SQLite file
and a file lock it also spans processes, such as the step processes of one Dagster run; with a
PostgreSQL table it spans machines, the pods of a deployment: ``ratelimit_postgres``). This
module adds the accounting the sync reports: how many seconds requests waited for a permit.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrate_limiter import AbstractBucket, Duration, InMemoryBucket, Limiter, Rate, SQLiteBucket
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from .errors import ConfigurationError
from .ratelimit_postgres import PostgresRateTable, build_postgres_bucket


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
        shared_file: a SQLite file that every process limiting the same server shares
            (see :func:`shared_rate_file`); ``None`` limits this process only.
        postgres: a table that every process on every machine limiting the same server shares
            (see :func:`~fhir_assets.fhir.ratelimit_postgres.shared_rate_table`); it takes
            precedence over ``shared_file``.
        clock: monotonic seconds (injectable for accounting tests).

    Attributes:
        throttled_s: total seconds callers waited for a permit.
    """

    def __init__(
        self,
        requests_per_s: float,
        *,
        shared_file: Path | None = None,
        postgres: PostgresRateTable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_s = requests_per_s
        rates = [rate_for(requests_per_s)]
        bucket: AbstractBucket = InMemoryBucket(rates)
        if postgres is not None:
            bucket = build_postgres_bucket(rates, postgres)
        elif shared_file is not None:
            shared_file.parent.mkdir(parents=True, exist_ok=True)
            bucket = SQLiteBucket.init_from_file(
                rates,
                db_path=str(shared_file),
                table="fhir_rate",
                create_new_table=True,
                use_file_lock=True,
            )
        self._limiter = Limiter(bucket)
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


def shared_rate_file(base_url: str, folder: Path | None = None) -> Path:
    """The SQLite file that rate-limits ``base_url`` for every process on this machine."""
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]
    return (folder or Path(tempfile.gettempdir()) / "fhir-assets-rate") / f"{digest}.sqlite"


class RateLimitedAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that takes a permit from a :class:`RateLimit` per send.

    The transport never retries (``max_retries=0``): every retry is a new ``send`` through
    :meth:`~fhir_assets.fhir.retry.RetryPolicy.run`, so it takes its own permit.
    """

    def __init__(self, rate_limit: RateLimit | None = None, **kwargs: Any) -> None:
        self.rate_limit = rate_limit
        super().__init__(**kwargs)

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        return super().send(request, *args, **kwargs)
