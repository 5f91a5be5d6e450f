"""The per-server request budget shared through PostgreSQL by processes that share nothing else,
as the pods of a deployment do: measured at the FHIR server, not at the clients.

Each worker process builds its FHIR resource from settings (``FHIR_RATE_LIMIT_POSTGRES``) and
its client through ``use_server_profile``, as a Dagster run does, then sends requests from two
threads once every worker is ready. The control gives each worker a rate-limit file of its own
(two machines without the setting) and must exceed the budget, or the test proves nothing.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pyrate_limiter import Duration, Rate, RateItem

from fhir_assets.assets.defs import build_fhir_resource
from fhir_assets.fhir import ConfigurationError, FhirClient
from fhir_assets.fhir.ratelimit import RateLimit
from fhir_assets.fhir.ratelimit_postgres import build_postgres_bucket, shared_rate_table
from fhir_assets.settings import Settings
from fhir_assets_tests.scripted_server import Reply, scripted_server

from .postgres import Postgres

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("postgres"), pytest.mark.timeout(240)]

RATE = 10  # requests per second, for every process together
# The control's sliding window at the server: without a shared budget two processes send 20/s.
WINDOW_S = 0.7
WORKERS, THREADS, REQUESTS = 2, 2, 12  # 48 requests: 4.8 s at the shared rate, 2.4 s without


def send_requests(environ: dict[str, str], go: Any, temp: str) -> None:
    """One "pod": settings -> resource -> client, then THREADS x REQUESTS reads after ``go``."""
    import tempfile

    from fhir_assets.sync import use_server_profile

    tempfile.tempdir = temp  # the control's own rate-limit file: another machine's /tmp
    fhir = build_fhir_resource(Settings.from_environ(environ))
    with FhirClient(fhir.base_url) as client:
        use_server_profile(client, fhir)
        assert go.wait(120), "the other workers never got ready"
        threads = [
            threading.Thread(target=lambda: [client.get("Patient/p") for _ in range(REQUESTS)])
            for _ in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


@contextmanager
def counting_server() -> Iterator[tuple[str, list[float]]]:
    """A FHIR-ish server on 127.0.0.1 that notes when each request arrives."""
    arrivals: list[float] = []

    def script(method: str, path: str) -> Reply:
        arrivals.append(time.time())  # the clock PostgreSQL stamps the permits with
        return Reply(body={"resourceType": "Patient", "id": "p"})

    with scripted_server(script) as (base, _):
        yield f"{base}/fhir", arrivals


def run_workers(environs: list[dict[str, str]], temps: list[Path]) -> None:
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    workers = [
        context.Process(target=send_requests, args=(environ, go, str(temp)))
        for environ, temp in zip(environs, temps, strict=True)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1)
    go.set()  # a worker still importing waits at go.wait(); requests start together either way
    for worker in workers:
        worker.join(timeout=180)
    assert [w.exitcode for w in workers] == [0] * len(workers)


def busiest_window(arrivals: list[float], window_s: float) -> int:
    """The most requests that arrived within any ``window_s`` (a sliding window)."""
    stamps = sorted(arrivals)
    return max(sum(1 for t in stamps[i:] if t < start + window_s) for i, start in enumerate(stamps))


def early_arrivals(arrivals: list[float], permits: list[float]) -> list[tuple[float, float]]:
    """(arrival, permit) pairs, both sorted, where the arrival comes before the permit."""
    arrived, granted = sorted(arrivals), sorted(permits)
    if len(granted) < len(arrived):  # a leak dropped the oldest permits: compare the newest
        arrived = arrived[len(arrived) - len(granted) :]
    # 5 ms: PostgreSQL's clock and time.time() read the same system clock, at different moments
    return [(a, p) for a, p in zip(arrived, granted) if a < p - 0.005]


def environ(base: str, **more: str) -> dict[str, str]:
    return {"FHIR_BASE_URL": base, "FHIR_SERVER_PROFILE": "generic",
            "FHIR_REQUESTS_PER_S": str(RATE), **more}  # fmt: skip


@pytest.mark.parametrize("shared", [True, False], ids=["postgres", "control-no-postgres"])
def test_processes_share_one_request_budget_through_postgres(
    postgres: Postgres, tmp_path: Path, shared: bool
) -> None:
    temps = [tmp_path / f"machine-{n}" for n in range(WORKERS)]
    for temp in temps:
        temp.mkdir()
    with counting_server() as (base, arrivals):
        more = {"FHIR_RATE_LIMIT_POSTGRES": postgres.dsn()} if shared else {}
        run_workers([environ(base, **more)] * WORKERS, temps)
    assert len(arrivals) == WORKERS * THREADS * REQUESTS
    busiest = busiest_window(arrivals, WINDOW_S)
    if shared:
        # the permits as the database logged them: at most RATE in any second, exactly
        logged = permit_log(postgres.dsn(), base)
        assert logged and busiest_window(logged, 0.999) <= RATE, logged
        # Measured at the server: no request arrived before its permit. A thread descheduled
        # between its permit and its request (a loaded machine) only makes it arrive later, so
        # a window at the server may then count more than RATE; sorted, the i-th arrival still
        # comes no sooner than the i-th permit (the newest ones if a leak dropped the oldest).
        early = early_arrivals(arrivals, logged)
        assert early == [], f"requests reached the server before their permits: {early}"
        assert max(arrivals) - min(arrivals) >= (len(arrivals) / RATE) - 1.2
    else:
        assert busiest > RATE * 1.5, f"only {busiest} requests within {WINDOW_S} s"


def permit_log(dsn: str, base_url: str) -> list[float]:
    """The bucket table's timestamps (seconds): all, or the newest if a leak (every 10 s) ran."""
    import psycopg
    from psycopg import sql

    table = sql.Identifier(f"ratelimit___{shared_rate_table(base_url, dsn).name}")
    query = sql.SQL("SELECT extract(epoch FROM item_timestamp::TIMESTAMPTZ) FROM {}").format(table)
    with psycopg.connect(dsn) as connection:
        return [float(row[0]) for row in connection.execute(query)]


def test_the_dsn_is_a_secret_everywhere(postgres: Postgres) -> None:
    dsn = postgres.dsn()
    environ = {"FHIR_BASE_URL": "http://127.0.0.1:9/fhir", "FHIR_RATE_LIMIT_POSTGRES": dsn}
    settings = Settings.from_environ(environ)
    from_env = build_fhir_resource(Settings.from_environ(environ, secrets_from_env=True))
    assert isinstance(from_env.rate_limit_postgres, dg.EnvVar)  # the UI shows the name only
    table = shared_rate_table("https://user:pw@ehr.example/fhir/", dsn)
    for shown in (repr(settings), repr(table), repr(build_fhir_resource(settings))):
        assert postgres.password not in shown
    assert "pw" not in table.name and table.name.startswith("fhir_")
    assert table == shared_rate_table("https://user:pw@ehr.example/fhir", dsn)  # one per server


def test_a_wrong_password_fails_at_once_naming_the_cause(postgres: Postgres) -> None:
    dsn = postgres.dsn().replace(postgres.password, "not-the-password")
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="password authentication failed") as caught:
        RateLimit(5, postgres=shared_rate_table("http://127.0.0.1:9/fhir", dsn))
    assert time.monotonic() - started < 15
    assert "not-the-password" not in str(caught.value)


def test_permits_are_logged_when_granted_not_when_asked_for(postgres: Postgres) -> None:
    # The limiter stamps a request when it asks; one that then waited (for the limiter's lock,
    # a late wake-up) must be logged as granted now, or it leaves the window early and lets
    # other processes exceed the budget.
    table = shared_rate_table("http://127.0.0.1:9/stale", postgres.dsn())
    bucket = build_postgres_bucket([Rate(2, Duration.SECOND)], table)
    asked = int(bucket.now()) - 900  # type: ignore[arg-type]  # two requests asked 0.9 s ago
    assert bucket.put(RateItem("fhir", asked)) and bucket.put(RateItem("fhir", asked))
    time.sleep(0.2)
    # both were granted 0.2 s ago: the window is full
    assert not bucket.put(RateItem("fhir", int(bucket.now())))  # type: ignore[arg-type]


def test_the_sync_command_takes_its_permits_through_postgres(
    postgres: Postgres, sandbox: Any, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "SNOWFLAKE_"))}
    env |= sandbox.environment() | {
        "FHIR_RATE_LIMIT_POSTGRES": postgres.dsn(),
        "FHIR_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
    }
    cli = str(Path(sys.executable).parent / "fhir-assets")
    done = subprocess.run(
        [cli, "sync", "--type", "Patient"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert permit_log(postgres.dsn(), sandbox.base_url), "no permit was logged in Postgres"
    assert postgres.password not in done.stdout + done.stderr
