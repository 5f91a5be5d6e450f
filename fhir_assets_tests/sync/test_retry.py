"""Retries through the fault proxy: which failures are retried, how long, and what is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_assets.fhir import RequestError, RetryPolicy, TransientRequestError
from fhir_assets_tests.proxy import Fault, FaultProxy
from fhir_assets_tests.sync.conftest import ClientFactory


class Sleeps(list[float]):
    """An injected sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(
    proxy: FaultProxy, proxied_client: ClientFactory, sleeps: Sleeps, status: int
) -> None:
    proxy.add(Fault("status", status=status, count=2))
    client = proxied_client(retry=RetryPolicy(sleep=sleeps))
    assert client.get("Patient", {"_count": 1})["resourceType"] == "Bundle"
    assert client.stats.retries == 2
    assert [s for _, _, s in proxy.requests] == [status, status, 200]


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(3, 3.0), (datetime.now(UTC) + timedelta(hours=2), 20.0), (999, 20.0)],
    ids=["seconds", "http-date-capped", "seconds-capped"],
)
def test_retry_after_is_honoured_and_capped(
    proxy: FaultProxy,
    proxied_client: ClientFactory,
    sleeps: Sleeps,
    retry_after: int | datetime,
    expected: float,
) -> None:
    proxy.add(Fault("status", status=429, retry_after=retry_after, count=1))
    client = proxied_client(retry=RetryPolicy(max_backoff_s=20.0, sleep=sleeps))
    client.get("Patient", {"_count": 1})
    assert sleeps == [expected]
    assert client.stats.retry_wait_s == expected


def test_backoff_grows_exponentially_with_jitter(
    proxy: FaultProxy, proxied_client: ClientFactory, sleeps: Sleeps
) -> None:
    proxy.add(Fault("status", status=503, count=4))
    client = proxied_client(retry=RetryPolicy(backoff_s=1.0, max_backoff_s=60, sleep=sleeps))
    client.get("Patient", {"_count": 1})
    # RetryPolicy.run: backoff * 2**(n-1) plus up to backoff_s (1 s) of jitter
    assert client.stats.retries == 4
    assert [1 <= sleeps[0] <= 2, 2 <= sleeps[1] <= 3, 4 <= sleeps[2] <= 5, 8 <= sleeps[3] <= 9] == [
        True
    ] * 4
    assert len(sleeps) == 4


@pytest.mark.parametrize("kind", ["drop", "truncate", "html"])
def test_dropped_truncated_and_html_answers_are_retried(
    proxy: FaultProxy, proxied_client: ClientFactory, sleeps: Sleeps, kind: str
) -> None:
    proxy.add(Fault(kind, status=503, count=2, path_contains="/Patient"))
    client = proxied_client(retry=RetryPolicy(sleep=sleeps))
    bundle = client.get("Patient", {"_count": 5})
    assert len(bundle["entry"]) == 5
    assert client.stats.retries == 2
    assert proxy.injected == {kind: 2}


def test_retries_are_bounded(
    proxy: FaultProxy, proxied_client: ClientFactory, sleeps: Sleeps
) -> None:
    proxy.add(Fault("status", status=503))
    client = proxied_client(retry=RetryPolicy(attempts=3, sleep=sleeps))
    with pytest.raises(TransientRequestError, match=r"HTTP 503.*injected fault") as caught:
        client.get("Patient")
    assert caught.value.status == 503
    assert len(proxy.requests) == 4


def test_other_client_errors_fail_fast_with_diagnostics(
    proxy: FaultProxy, proxied_client: ClientFactory, sleeps: Sleeps
) -> None:
    client = proxied_client(retry=RetryPolicy(sleep=sleeps))
    with pytest.raises(RequestError) as caught:
        client.get("Patient/does-not-exist")
    assert not isinstance(caught.value, TransientRequestError)
    assert caught.value.status == 404
    assert caught.value.issues and "404" in str(caught.value)
    assert len(proxy.requests) == 1 and sleeps == []


def test_an_answer_slower_than_the_timeout_is_retried(
    proxy: FaultProxy, proxied_client: ClientFactory, sleeps: Sleeps
) -> None:
    # 10 s against a 3 s timeout: the slow answer always times out, and an ordinary one gets
    # three seconds on a loaded machine
    proxy.add(Fault("slow", delay_s=10.0, count=1))
    client = proxied_client(timeout=3.0, retry=RetryPolicy(sleep=sleeps))
    assert client.get("Patient", {"_count": 1})["resourceType"] == "Bundle"
    assert client.stats.retries >= 1  # the slow answer timed out (a loaded machine may add one)
    assert proxy.injected == {"slow": 1}
