"""Issue 23 findings 1 and 2: a redirect never carries secrets, tokens or requests to another
origin or to plain http, and another origin's answer is never taken as the server's."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_assets.fhir.auth import (
    BearerAuth,
    ClientCredentialsTokenSource,
    ClientSecretTokenSource,
)
from fhir_assets.fhir.bulk import BulkClient, ExportRequest
from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.errors import FhirError
from fhir_assets.fhir.keys import generate_private_key
from fhir_assets.fhir.tokens import TokenRequestError, TokenSource
from fhir_assets_tests.security.evil import (
    EvilServer,
    evil_dns,  # noqa: F401 - fixture
    evil_servers,
    json_route,
    redirect,
)
from fhir_assets_tests.security.hostile import SECRET, TOKEN, leaks

pytestmark = pytest.mark.usefixtures("evil_dns")

OK_TOKEN = {
    "access_token": TOKEN,
    "token_type": "bearer",
    "expires_in": 300,
    "scope": "system/*.read",
}
BUNDLE = {
    "resourceType": "Bundle",
    "type": "searchset",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "foreign"}, "search": {"mode": "match"}}
    ],
}


def secret_source(url: str, method: str) -> TokenSource:
    return ClientSecretTokenSource(
        token_url=f"{url}/token", client_id="c1", client_secret=SECRET, scope="system/*.read",
        method=method, sleep=lambda s: None,
    )  # fmt: skip


def assertion_source(url: str, method: str) -> TokenSource:
    return ClientCredentialsTokenSource(
        token_url=f"{url}/token", client_id="c1", private_key=generate_private_key("RS384"),
        scope="system/*.read", sleep=lambda s: None,
    )  # fmt: skip


SOURCES = [
    pytest.param(secret_source, "client_secret_post", id="secret-post"),
    pytest.param(secret_source, "client_secret_basic", id="secret-basic"),
    pytest.param(assertion_source, "", id="backend-services-assertion"),
]


def target_of(evil: EvilServer, kind: str) -> str:
    port = evil.url.rsplit(":", 1)[1]
    return {"evil-http": evil.url, "loopback-other-port": f"http://127.0.0.1:{port}"}[kind]


@pytest.mark.parametrize("status", [307, 308, 302])
@pytest.mark.parametrize("kind", ["evil-http", "loopback-other-port"])
@pytest.mark.parametrize(("build", "method"), SOURCES)
def test_token_redirect_to_another_origin_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, build: Any, method: str, kind: str, status: int
) -> None:
    # even with plain http opted in, the origin rule alone must stop the secret
    monkeypatch.setenv("FHIR_ALLOW_INSECURE_HTTP", "1")
    with evil_servers() as (server, evil):
        evil.route("/", json_route(OK_TOKEN))
        target = target_of(evil, kind)
        server.route("/token", redirect(status, f"{target}/token"))
        with pytest.raises(TokenRequestError) as caught:
            build(server.url, method).token()
    assert evil.seen == [], "the redirect target received the token request"
    message = str(caught.value)
    assert f"{server.url}/token" in message and f"{target}/token" in message
    assert leaks(message) == []


def test_token_redirect_to_plain_http_refused_without_opt_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FHIR_ALLOW_INSECURE_HTTP", raising=False)
    with evil_servers() as (server, evil):
        evil.route("/", json_route(OK_TOKEN))
        server.route("/token", redirect(307, f"{evil.url}/token"))
        with pytest.raises(TokenRequestError, match=r"evil\.test"):
            secret_source(server.url, "client_secret_post").token()
    assert evil.seen == []


def test_token_redirect_on_the_same_origin_is_followed() -> None:
    # valid but unusual: a token endpoint that moved within its own origin still works
    with evil_servers(1) as (server,):
        server.route("/token", redirect(307, "/oauth2/token"))
        server.route("/oauth2/token", json_route(OK_TOKEN))
        token = secret_source(server.url, "client_secret_post").token()
    assert token.access_token == TOKEN
    assert [s.path for s in server.seen] == ["/token", "/oauth2/token"]
    assert b"client_secret" in server.seen[1].body  # 307 keeps the POST and its body


class FixedTokens(TokenSource):
    def _fetch(self) -> Any:
        from fhir_assets.fhir.tokens import Token

        return Token(TOKEN, expires_at=1e12, issued_at=0)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_search_redirect_to_another_origin_lands_nothing(
    monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setenv("FHIR_ALLOW_INSECURE_HTTP", "1")
    with evil_servers() as (server, evil):
        evil.route("/", json_route(BUNDLE))
        server.route("/fhir/Patient", redirect(status, f"{evil.url}/fhir/Patient"))
        base = f"{server.url}/fhir"
        client = FhirClient(base, auth=BearerAuth(FixedTokens(), base))
        with client, pytest.raises(FhirError) as caught:
            list(client.search("Patient", {"_count": "10"}))
    assert evil.seen == []
    assert f"{evil.url}/fhir/Patient" in str(caught.value)
    assert f"{server.url}/fhir/Patient" in str(caught.value)


def test_search_redirect_on_the_same_origin_is_followed_with_the_token() -> None:
    with evil_servers(1) as (server,):
        server.route("/fhir/Patient", redirect(302, "/fhir/r4/Patient?page=1"))
        server.route("/fhir/r4/Patient", json_route(BUNDLE))
        base = f"{server.url}/fhir"
        with FhirClient(base, auth=BearerAuth(FixedTokens(), base)) as client:
            found = list(client.search("Patient"))
    assert [r["id"] for r in found] == ["foreign"]
    assert server.seen[1].headers.get("Authorization") == f"Bearer {TOKEN}"
    assert server.seen[1].path == "/fhir/r4/Patient?page=1"


@pytest.mark.parametrize("step", ["kick-off", "status"])
def test_bulk_redirect_to_another_origin_is_refused(
    monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    monkeypatch.setenv("FHIR_ALLOW_INSECURE_HTTP", "1")
    manifest = {"transactionTime": "2026-01-01T00:00:00Z", "request": "x",
                "requiresAccessToken": True, "output": [], "error": []}  # fmt: skip
    with evil_servers() as (server, evil):
        evil.route("/", json_route(manifest))
        base = f"{server.url}/fhir"
        if step == "kick-off":
            server.route("/fhir/$export", redirect(302, f"{evil.url}/fhir/$export"))
        else:
            server.route("/fhir/$export", json_route({}, 202, {"Content-Location": f"{base}/st"}))
            server.route("/fhir/st", redirect(302, f"{evil.url}/fhir/st"))
        client = FhirClient(base, auth=BearerAuth(FixedTokens(), base))
        with client, BulkClient(client, sleep=lambda s: None) as bulk:
            with pytest.raises(FhirError, match="another origin"):
                job = bulk.kick_off(ExportRequest())
                bulk.poll(job)
    assert evil.seen == []
