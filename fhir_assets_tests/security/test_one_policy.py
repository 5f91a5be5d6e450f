"""Issue 23: one session and one retry policy per server.

The client built from the settings and the Bulk Data client over it send through the same
session, whose transport never retries by itself; searches, token requests and Bulk Data retry
only through the settings' :class:`RetryPolicy` (``Retry-After`` honoured and capped), and a
refusal (4xx) is not retried, but for the vendor rule of one more try after ``invalid_client``.
"""

from __future__ import annotations

import pytest

from fhir_assets.fhir.auth import ClientSecretTokenSource
from fhir_assets.fhir.bulk import BulkClient
from fhir_assets.fhir.errors import TransientRequestError
from fhir_assets.fhir.factory import build_client
from fhir_assets.fhir.retry import RetryPolicy, retry_after
from fhir_assets.fhir.settings import ServerSettings, build_token_source
from fhir_assets.fhir.tokens import TokenRequestError
from fhir_assets_tests.scripted_server import Reply, scripted_server

BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1"}}]}  # fmt: skip
TOKEN = {"access_token": "t0k", "token_type": "bearer", "expires_in": 300, "scope": "system/*.rs"}


def failing_first(reply: Reply, then: Reply, times: int = 1):  # type: ignore[no-untyped-def]
    """A script answering ``reply`` to the first ``times`` requests, then ``then``."""
    count = [0]

    def script(method: str, path: str) -> Reply:
        count[0] += 1
        return reply if count[0] <= times else then

    return script


def test_the_bulk_and_rest_paths_of_one_built_client_share_one_session() -> None:
    with scripted_server(lambda m, p: Reply(200, BUNDLE)) as (base, seen):
        settings = ServerSettings(f"{base}/fhir", server_profile="generic", headers={"X-App": "7"})
        with build_client(settings) as client:
            bulk = BulkClient(client)
            assert bulk.session is client.session
            assert bulk.rate_limit is client.rate_limit
            # the transport never retries: RetryPolicy.run is the only retry loop
            for prefix in ("http://", "https://"):
                assert client.session.get_adapter(prefix + "x").max_retries.total == 0
            assert [r["id"] for r in client.search("Patient")] == ["p1"]
            assert bulk.session.get(f"{base}/fhir/files/1", timeout=30).status_code == 200
            bulk.close()
            assert [r["id"] for r in client.search("Patient")] == ["p1"]  # still usable
    assert {s.headers.get("X-App") for s in seen} == {"7"}


def test_a_busy_search_is_retried_by_the_policy_with_its_retry_after_capped() -> None:
    waits: list[float] = []
    busy = Reply(503, {}, headers={"Retry-After": "7"})
    with scripted_server(failing_first(busy, Reply(200, BUNDLE))) as (base, seen):
        policy = RetryPolicy(attempts=3, max_backoff_s=5.0, sleep=waits.append)
        settings = ServerSettings(f"{base}/fhir", server_profile="generic", retry=policy)
        with build_client(settings) as client:
            assert [r["id"] for r in client.search("Patient")] == ["p1"]
            assert (client.stats.retries, client.stats.retry_wait_s) == (1, 5.0)
    assert waits == [5.0]
    assert len(seen) == 2


def test_a_busy_transaction_post_is_not_resent_by_the_client() -> None:
    waits: list[float] = []
    with scripted_server(lambda m, p: Reply(503, {})) as (base, seen):
        policy = RetryPolicy(attempts=3, sleep=waits.append)
        settings = ServerSettings(f"{base}/fhir", server_profile="generic", retry=policy)
        with build_client(settings) as client, pytest.raises(TransientRequestError):
            client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert (len(seen), waits) == (1, [])


def token_source(url: str, waits: list[float], attempts: int = 3) -> ClientSecretTokenSource:
    return ClientSecretTokenSource(
        token_url=f"{url}/token",
        client_id="app",
        client_secret="s3cret",
        scope="system/*.rs",
        sleep=waits.append,
        retry=RetryPolicy(attempts=attempts, max_backoff_s=30.0),
    )


def test_a_token_endpoint_that_fails_once_with_503_is_retried_after_its_retry_after() -> None:
    waits: list[float] = []
    busy = Reply(503, {"error": "temporarily_unavailable"}, headers={"Retry-After": "2"})
    with scripted_server(failing_first(busy, Reply(200, TOKEN))) as (base, seen):
        token = token_source(base, waits).token()
    assert token.access_token == "t0k"
    assert [s.method for s in seen] == ["POST", "POST"]
    assert waits == [2.0]


def test_a_token_endpoint_that_stays_busy_fails_once_the_policy_is_spent() -> None:
    waits: list[float] = []
    with scripted_server(lambda m, p: Reply(429, {})) as (base, seen):
        with pytest.raises(TokenRequestError, match="HTTP 429"):
            token_source(base, waits, attempts=2).token()
    assert len(seen) == 3  # the first try and the policy's 2 retries, no more
    # the policy's backoff (0.5 s, then 1 s) plus up to 0.5 s of jitter
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 1.5


def test_invalid_client_is_tried_once_more_and_never_stormed() -> None:
    waits: list[float] = []
    refused = Reply(400, {"error": "invalid_client"}, content_type="application/json")
    with scripted_server(lambda m, p: refused) as (base, seen):
        with pytest.raises(TokenRequestError, match="invalid_client"):
            token_source(base, waits).token()
    assert len(seen) == 2  # Epic's rule: one more try, then the usual causes
    assert waits == [1.0]


def test_invalid_grant_is_not_retried() -> None:
    waits: list[float] = []
    refused = Reply(400, {"error": "invalid_grant"}, content_type="application/json")
    with scripted_server(lambda m, p: refused) as (base, seen):
        with pytest.raises(TokenRequestError, match="invalid_grant"):
            token_source(base, waits).token()
    assert (len(seen), waits) == (1, [])


def test_token_sources_built_from_settings_use_the_settings_policy() -> None:
    policy = RetryPolicy(attempts=1)
    settings = ServerSettings(
        "https://ehr.example.org/fhir", client_id="app", client_secret="s", scopes="system/*.rs",
        token_url="https://ehr.example.org/token", retry=policy,
    )  # fmt: skip
    source = build_token_source(settings)
    assert source is not None and source.retry is policy  # type: ignore[attr-defined]


def test_retry_after_reads_seconds_and_http_dates_against_the_servers_clock() -> None:
    assert retry_after({"Retry-After": "12"}) == 12.0
    date = {"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT", "Date": "Wed, 21 Oct 2026 07:28:00 GMT"}
    assert retry_after(date) == 30.0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None


def test_a_busy_put_is_retried_by_the_clients_policy() -> None:
    from fhir_assets.fhir.write import WriteClient

    waits: list[float] = []
    patient = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "2"}}
    busy = Reply(503, {}, headers={"Retry-After": "3"})
    with scripted_server(failing_first(busy, Reply(200, patient))) as (base, seen):
        policy = RetryPolicy(attempts=2, sleep=waits.append)
        settings = ServerSettings(f"{base}/fhir", server_profile="generic", retry=policy)
        with build_client(settings) as client:
            outcome = WriteClient(client).update(patient)
    assert outcome.status == 200
    assert ([s.method for s in seen], waits) == (["PUT", "PUT"], [3.0])
