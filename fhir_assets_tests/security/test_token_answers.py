"""What real and hostile token endpoints answer with HTTP 200: ``expires_in`` as a string, zero,
negative, NaN or missing; ``token_type`` in lower case; no ``access_token``; an access_token that
is null, empty, a number or holds a line break. Each gives a usable token or a clear
:class:`TokenRequestError`, and neither the secret nor the token reaches a message or a log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_assets.fhir.auth import BearerAuth, ClientSecretTokenSource
from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets.fhir.tokens import DEFAULT_LIFETIME_S, Token, TokenRequestError
from fhir_assets_tests.security.evil import EvilServer, evil_servers, json_route

SECRET = "answers-secret-6Qp2"
TOKEN = "answers-token-Zr81"
SEARCHSET = {"resourceType": "Bundle", "type": "searchset"}


@pytest.fixture
def server() -> Iterator[EvilServer]:
    with evil_servers(1) as (one,):
        one.route("/fhir/Patient", json_route(SEARCHSET))
        yield one


def fetch(server: EvilServer, answer: Any) -> Token:
    server.route("/token", json_route(answer, headers={"Cache-Control": "no-store"}))
    return ClientSecretTokenSource(
        token_url=f"{server.url}/token", client_id="c", client_secret=SECRET,
        scope="system/Patient.read", retry=RetryPolicy(attempts=0), sleep=lambda s: None,
    ).token()  # fmt: skip


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [("3600", 3600.0), (3600, 3600.0), (None, DEFAULT_LIFETIME_S), (0, DEFAULT_LIFETIME_S),
     (-100, DEFAULT_LIFETIME_S), ("NaN", DEFAULT_LIFETIME_S), ("Infinity", DEFAULT_LIFETIME_S),
     ("soon", DEFAULT_LIFETIME_S)],
)  # fmt: skip
def test_expires_in_in_any_form_gives_a_token_that_is_not_due_at_once(
    server: EvilServer, expires_in: Any, lifetime: float
) -> None:
    answer = {"access_token": TOKEN, "token_type": "bearer"}  # lower case, as Epic sends it
    if expires_in is not None:
        answer["expires_in"] = expires_in
    token = fetch(server, answer)
    assert token.access_token == TOKEN
    assert token.expires_at - token.issued_at == pytest.approx(lifetime)
    assert not token.refresh_due(time.time())  # a token due at once is fetched per request


@pytest.mark.parametrize("value", [None, "", 12345, f"{TOKEN}\r\nX-Injected: 1", f"{TOKEN}\u00e9"])
def test_an_unusable_access_token_is_a_clear_error_that_never_quotes_it(
    server: EvilServer, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenRequestError) as raised:
        fetch(server, {"access_token": value, "token_type": "Bearer", "expires_in": 300})
    assert "unusable access_token" in str(raised.value)
    for text in (str(raised.value), caplog.text):
        assert TOKEN not in text and SECRET not in text and "12345" not in text


def test_a_token_with_a_line_break_never_reaches_a_request(server: EvilServer) -> None:
    # http.client refuses the header with a ValueError that quotes it whole (the token)
    server.route("/token", json_route({"access_token": f"{TOKEN}\r\nX-Injected: 1"}))
    tokens = ClientSecretTokenSource(
        token_url=f"{server.url}/token", client_id="c", client_secret=SECRET, scope="s",
        retry=RetryPolicy(attempts=0), sleep=lambda s: None,
    )  # fmt: skip
    auth = BearerAuth(tokens, f"{server.url}/fhir")
    client = FhirClient(f"{server.url}/fhir", auth=auth, retry=RetryPolicy(attempts=0))
    with client, pytest.raises(TokenRequestError) as raised:
        list(client.search("Patient"))
    assert TOKEN not in str(raised.value)
    assert not [s for s in server.seen if s.path.startswith("/fhir/")]


def test_a_200_without_an_access_token_says_so(server: EvilServer) -> None:
    with pytest.raises(TokenRequestError, match="HTTP 200 with JSON that holds no access_token"):
        fetch(server, {"token_type": "Bearer", "expires_in": 300, "scope": "system/*.read"})
