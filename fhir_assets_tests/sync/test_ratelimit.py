"""The client-side rate limit is shared across threads, counted, and sits under the client."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from fhir_assets.fhir import ConfigurationError, FhirClient
from fhir_assets.fhir.parallel import run_parallel
from fhir_assets.fhir.ratelimit import RateLimit, rate_for, shared_rate_file
from fhir_assets.fhir.ratelimit_postgres import shared_rate_table
from fhir_assets_tests.sync.fakefhir import Script, fake_fhir


def test_rate_limit_is_shared_by_threads() -> None:
    limit = RateLimit(20)
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [limit.acquire() for _ in range(15)]) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert elapsed >= 1.9  # 45 permits at 20/s: two full windows waited
    assert limit.throttled_s > 1.0


def take_permits(path: str, count: int, log: str) -> None:
    limit = RateLimit(10, shared_file=Path(path))
    stamps = []
    for _ in range(count):
        asked = time.time()
        limit.acquire()
        stamps.append(f"{asked} {time.time()}")  # the permit was granted between the two
    Path(log).write_text("\n".join(stamps))


def test_a_shared_file_limits_across_processes(tmp_path: Path) -> None:
    path = shared_rate_file("http://127.0.0.1:1/fhir", tmp_path)
    context = multiprocessing.get_context("spawn")
    logs = [tmp_path / f"permits-{n}.txt" for n in range(2)]
    workers = [context.Process(target=take_permits, args=(str(path), 25, str(log))) for log in logs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    spans = [
        (float(asked), float(got))
        for log in logs
        for asked, got in (line.split() for line in log.read_text().splitlines())
    ]
    # 50 permits at 10/s together take 4 s or more; each process limited alone would finish its
    # 25 in about 2 s. A permit was granted after it was asked for and before the clock was read
    # again (a loaded machine can stretch that span, never move the permit out of it).
    assert max(got for _, got in spans) - min(asked for asked, _ in spans) >= 4.0
    # Permits surely granted within one second (their whole span inside it) stay near 10
    # (without the shared file: about 20).
    starts = sorted(asked for asked, _ in spans)
    busiest = max(sum(1 for a, g in spans if start <= a and g < start + 0.99) for start in starts)
    assert busiest <= 12


def test_client_requests_wait_for_permits() -> None:
    with fake_fhir(Script(patients=1)) as base, FhirClient(base) as client:
        client.use_rate_limit(RateLimit(5))
        started = time.monotonic()
        for _ in range(5):
            client.get("Patient")
        fifth = time.monotonic()
        for _ in range(3):
            client.get("Patient")
        assert time.monotonic() - started >= 0.9
        # the sixth waited out the first second, less what five requests took (slow ones on a
        # loaded machine leave less to wait)
        assert client.rate_limit is not None
        assert client.rate_limit.throttled_s >= min(0.5, started + 0.9 - fifth)


@pytest.mark.parametrize(
    "dsn", ["postgresq://fhir:s3cret-pw@db.example/rate", "host=db.example password=s3cret-pw x"]
)
def test_an_unparsable_postgres_dsn_fails_without_showing_it(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="neither a postgresql:// URL") as caught:
        RateLimit(5, postgres=shared_rate_table("http://127.0.0.1:1/fhir", dsn))
    assert "s3cret-pw" not in str(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_fractional_and_invalid_rates() -> None:
    assert rate_for(0.5).interval == 2000 and rate_for(0.5).limit == 1
    with pytest.raises(ConfigurationError):
        rate_for(0)


def test_run_parallel_yields_everything_and_reraises_the_first_error() -> None:
    tasks = [lambda n=n: iter(range(n * 10, n * 10 + 10)) for n in range(5)]
    assert sorted(run_parallel(tasks, workers=3)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(run_parallel([broken, *tasks], workers=2))
