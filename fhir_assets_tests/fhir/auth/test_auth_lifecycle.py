"""Token lifecycle: refresh before expiry, once on 401, one cache shared by threads, and the token
endpoint's transient and non-OAuth answers."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

import pytest

from fhir_assets.fhir import (
    AuthError,
    ClientSecretTokenSource,
    ServerSettings,
    connect,
    token_source,
)
from fhir_assets.sandbox import Sandbox

from .http_server import HttpServer, Received, Response, json_response

JOB_SECONDS = 12.0


def sandbox_settings(sandbox: Sandbox) -> ServerSettings:
    return ServerSettings(
        sandbox.base_url,
        client_id=sandbox.client.client_id,
        private_key=str(sandbox.client.private_key_path),
        resource_types=("Patient", "Encounter"),
    )


@pytest.mark.slow
def test_a_job_longer_than_the_token_lifetime_never_fails(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    server = make_sandbox(token_lifetime=5)
    settings = sandbox_settings(server)
    expected = server.counts(["Patient", "Encounter"])
    failures: list[BaseException] = []
    finished: list[list[float]] = [[] for _ in range(3)]  # when each thread's searches ended
    started = time.monotonic()

    def job(ends: list[float]) -> None:
        deadline = started + JOB_SECONDS
        with connect(settings) as client:  # each thread its own client, one token cache
            while time.monotonic() < deadline:
                try:
                    for resource_type, count in expected.items():
                        assert len(list(client.search(resource_type, {"_count": 50}))) == count
                        ends.append(time.monotonic())
                except BaseException as exc:  # reported by the main thread
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=job, args=(ends,)) for ends in finished]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lasted_s = time.monotonic() - started  # over JOB_SECONDS on a loaded machine
    tokens = token_source(settings)
    assert failures == []
    # every thread searched on after the first token expired (5 s)
    assert all(ends and ends[-1] - started > 5 for ends in finished), finished
    # 5 s tokens refreshed after 4 s, one cache shared by the threads: about one fetch per 4 s
    # of the job (3-4 in 12 s; a request in flight while its token expires adds one). A cache
    # per thread would fetch three times as many.
    assert tokens is not None and 3 <= tokens.fetches <= 3 + lasted_s / 4, (
        tokens.fetches,
        lasted_s,
    )


@pytest.mark.slow
def test_a_refused_token_is_refreshed_once_on_401(make_sandbox: Callable[..., Sandbox]) -> None:
    server = make_sandbox(token_lifetime=5)  # the first request must beat it, under load too
    from fhir_assets.fhir import ClientCredentialsTokenSource, load_private_key
    from fhir_assets.fhir.auth import BearerAuth
    from fhir_assets.fhir.client import FhirClient

    # the cache's clock stands still: the token looks fresh here long after the server let it
    # expire (as after a suspend, or a token the server revoked), so only the 401 reveals it
    frozen = time.time()
    tokens = ClientCredentialsTokenSource(
        token_url=server.token_url,
        client_id=server.client.client_id,
        private_key=load_private_key(server.client.private_key_path),
        scope="system/Patient.read",
        now=lambda: frozen,
    )
    with FhirClient(server.base_url, auth=BearerAuth(tokens, server.base_url)) as client:
        assert client.get("Patient", {"_count": 1})["resourceType"] == "Bundle"
        time.sleep(6)  # the server's clock moves on: the token has expired there
        response = client.session.get(client.url("Patient"), params={"_count": 1})
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert tokens.fetches == 2


def flaky_token_endpoint(answers: list[Response]) -> Callable[[Received], Response]:
    """Answers the given responses in turn, then a valid token."""

    def route(received: Received) -> Response:
        if answers:
            return answers.pop(0)
        return json_response(200, {"access_token": "tok-" + "x" * 20, "expires_in": 300})

    return route


def secret_source(url: str, slept: list[float]) -> ClientSecretTokenSource:
    return ClientSecretTokenSource(
        token_url=url,
        client_id="epic-client",
        client_secret="flaky-secret-0123456789",
        scope="system/Patient.read",
        sleep=slept.append,
    )


def test_a_bare_transient_invalid_client_is_retried_once() -> None:
    answers = [json_response(400, {"error": "invalid_client"})]
    with HttpServer({"/token": flaky_token_endpoint(answers)}) as server:
        slept: list[float] = []
        token = secret_source(server.url + "/token", slept).token()
    assert token.scopes == ("system/Patient.read",) and slept == [1.0]
    assert len(server.received) == 2


def test_other_refusals_are_not_retried() -> None:
    answers = [json_response(400, {"error": "invalid_scope", "error_description": "no"})]
    with HttpServer({"/token": flaky_token_endpoint(answers)}) as server:
        slept: list[float] = []
        with pytest.raises(AuthError, match="invalid_scope"):
            secret_source(server.url + "/token", slept).token()
    assert slept == [] and len(server.received) == 1


@pytest.mark.parametrize("status", [200, 502])
def test_token_endpoint_answering_html_is_a_clear_error(status: int) -> None:
    page = (status, {"Content-Type": "text/html; charset=utf-8"}, b"<html>Login</html>")
    with HttpServer({"/token": lambda r: page}) as server:
        with pytest.raises(AuthError) as caught:
            secret_source(server.url + "/token", []).token()
    text = str(caught.value)
    assert f"HTTP {status}, not an OAuth JSON answer but text/html" in text
    assert "flaky-secret" not in text and "<html>" not in text


def test_an_echoed_secret_is_scrubbed_from_the_error() -> None:
    echo = json_response(
        401, {"error": "invalid_client", "error_description": "bad flaky-secret-0123456789"}
    )
    with HttpServer({"/token": flaky_token_endpoint([echo, echo])}) as server:
        with pytest.raises(AuthError) as caught:
            secret_source(server.url + "/token", []).token()
    assert "flaky-secret" not in str(caught.value) and "[redacted]" in str(caught.value)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_secret_methods_put_the_secret_in_header_or_form(method: str) -> None:
    with HttpServer({"/token": flaky_token_endpoint([])}) as server:
        tokens = ClientSecretTokenSource(
            token_url=server.url + "/token",
            client_id="app-id",
            client_secret="s3cret-value_0123456789",
            scope="system/Patient.read",
            method=method,
        )
        tokens.token()
    sent = server.received[0]
    form = dict(parse_qsl(sent.body.decode()))
    if method == "client_secret_basic":
        basic = base64.b64decode(sent.headers["authorization"].removeprefix("Basic ")).decode()
        assert basic == "app-id:s3cret-value_0123456789"
        assert "client_secret" not in form
    else:
        assert "authorization" not in sent.headers
        assert form["client_id"] == "app-id" and form["client_secret"] == "s3cret-value_0123456789"
    assert form["grant_type"] == "client_credentials"


@pytest.mark.parametrize(
    ("offered", "configured", "expect_post"),
    [
        (["client_secret_post"], None, True),
        (["client_secret_basic", "client_secret_post"], None, False),
        (["client_secret_post"], "client-secret-basic", False),
    ],
)
def test_inferred_secret_method_follows_what_the_server_offers(
    offered: list[str], configured: str | None, expect_post: bool
) -> None:
    config = {"token_endpoint": "", "token_endpoint_auth_methods_supported": offered}
    with HttpServer() as server:
        config["token_endpoint"] = server.url + "/token"
        server.routes["/fhir/.well-known/smart-configuration"] = lambda r: json_response(
            200, config
        )
        server.routes["/token"] = flaky_token_endpoint([])
        settings = ServerSettings(
            server.url + "/fhir",
            client_id="app",
            client_secret="s" * 20,
            auth_method=configured,
            scopes="system/Patient.rs",
        )
        tokens = token_source(settings)
        assert tokens is not None
        tokens.token()
    sent = next(r for r in server.received if r.path == "/token")
    assert ("client_secret" in dict(parse_qsl(sent.body.decode()))) is expect_post
    assert ("authorization" in sent.headers) is not expect_post
