"""The request budget of one FHIR server shared through PostgreSQL, by every pod of a deployment.

pyrate-limiter's ``PostgresBucket`` keeps a sliding-window log in a table (one per server here)
and makes "count the window, then insert" atomic across processes and machines by taking
``LOCK TABLE ... IN EXCLUSIVE MODE`` inside the transaction that does both (psycopg 3 connections
are not in autocommit, so the lock is held until the pool commits on return). Its timestamps
come from the database's clock, so pods with skewed clocks still agree on the window.

psycopg is imported only when a Postgres bucket is built: nothing else needs it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from pyrate_limiter import AbstractBucket, PostgresBucket, Rate, RateItem

from .errors import ConfigurationError

# One pool per (process, DSN): every RateLimit of a process shares it, and a forked child never
# reuses its parent's sockets.
_POOLS: dict[tuple[int, str], Any] = {}
_POOLS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class PostgresRateTable:
    """Where a server's request log lives: a libpq DSN (may hold a password, never shown) and a
    table name derived from the server's base URL (see :func:`shared_rate_table`)."""

    dsn: str = field(repr=False)
    name: str


class FreshClockPostgresBucket(PostgresBucket):
    """pyrate-limiter's ``PostgresBucket``, stamping each attempt with the database's time now.

    The limiter stamps an item when it is asked for (before waiting for its own lock behind
    other threads) and, while blocking, moves the stamp on by the sleep it planned rather than
    the time that passed. ``PostgresBucket`` checks the window at that stamp and logs it: a
    stale stamp is checked against an older window and logged in the past, so the permit frees
    early for every other process. Read here, under the limiter's lock and just before the
    table lock (taken NOWAIT), the stamp is the time of the check.
    """

    def put(self, item: RateItem) -> bool:
        item.timestamp = int(self._clock.now())  # type: ignore[arg-type]  # sync PostgresClock
        return bool(super().put(item))


def shared_rate_table(base_url: str, dsn: str) -> PostgresRateTable:
    """The table that rate-limits ``base_url`` for every process that reaches the database at
    ``dsn``: a hash of the URL, so neither credentials nor query strings end up in a name."""
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]
    return PostgresRateTable(dsn=dsn, name=f"fhir_{digest}")


def build_postgres_bucket(rates: list[Rate], table: PostgresRateTable) -> AbstractBucket:
    """A ``PostgresBucket`` on ``ratelimit___<table.name>`` (created if missing).

    Raises:
        ConfigurationError: the database cannot be reached or refuses the login.
    """
    import psycopg
    import psycopg_pool
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = str(conninfo_to_dict(table.dsn).get("password") or "")
    except psycopg.ProgrammingError:
        # libpq quotes the unparsable text, password and all: say nothing of it, chain nothing
        raise ConfigurationError(
            "the rate-limit database's DSN is neither a postgresql:// URL nor key=value pairs"
        ) from None
    try:
        return FreshClockPostgresBucket(_pool(table.dsn), table.name, rates)
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        detail = str(exc).replace(password, "***") if password else str(exc)
        raise ConfigurationError(
            f"the rate-limit database cannot be used ({type(exc).__name__}: {detail}); check "
            "its DSN (host, port, user, password, database) and that the user may create tables"
        ) from exc


def _pool(dsn: str) -> Any:
    import psycopg
    from psycopg_pool import ConnectionPool

    key = (os.getpid(), dsn)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            # One plain connection first: a wrong password or host fails now with libpq's own
            # message, where the pool would retry in the background and time out saying nothing.
            psycopg.connect(dsn, connect_timeout=10).close()
            # Permits are taken one at a time under the limiter's lock; the clock query and the
            # background leak need the others. check: a connection dropped by a database
            # restart is replaced instead of failing the next request.
            pool = ConnectionPool(
                dsn,
                min_size=1,
                max_size=4,
                timeout=30,
                open=True,
                configure=_utc,
                check=ConnectionPool.check_connection,
                name="fhir-rate-limit",
            )
            _POOLS[key] = pool
        return pool


def _utc(connection: Any) -> None:
    # The bucket's column is a TIMESTAMP without time zone, converted with the session's TimeZone
    # on every write and compare: sessions with different PGTZ would disagree by hours.
    connection.execute("SET TIME ZONE 'UTC'")
    connection.commit()
