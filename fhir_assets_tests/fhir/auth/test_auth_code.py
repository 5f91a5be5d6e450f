"""Authorization code + PKCE against a real authlib authorization server on 127.0.0.1."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from fhir_assets.fhir import (
    AuthError,
    AuthorizationCodeTokenSource,
    CodeClient,
    ConfigurationError,
    ServerSettings,
    TokenStore,
    connect,
    discover,
)
from fhir_assets.fhir.login import login
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets.fhir.smart import SmartConfiguration

from ...proxy import Fault, FaultProxy
from .oauth_server import OAuthServer

SCOPE = "user/Patient.rs offline_access"


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer(token_lifetime=3600) as server:
        server.add_client("public-app", scope=SCOPE)
        server.add_client("confidential-app", secret="s3cret-confidential-value", scope=SCOPE)
        yield server


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens", Fernet.generate_key())


def approve(url: str) -> None:
    """The user approves in a browser: follow the authorize URL and its redirect."""
    assert requests.get(url, timeout=10).status_code == 200


def run_login(oauth: OAuthServer, store: TokenStore, client: CodeClient, **kwargs: object):
    config = discover(oauth.base_url)
    return login(
        config,
        base_url=oauth.base_url,
        client=client,
        scope=SCOPE,
        store=store,
        open_browser=kwargs.pop("open_browser", approve),
        echo=lambda text: None,
        timeout=10,
        **kwargs,
    )


@pytest.mark.parametrize(
    "client",
    [CodeClient("public-app"), CodeClient("confidential-app", "s3cret-confidential-value")],
)
def test_login_exchanges_code_with_pkce_and_stores_tokens(
    oauth: OAuthServer, store: TokenStore, client: CodeClient
) -> None:
    shown: list[str] = []
    token = run_login(
        oauth, store, client, open_browser=lambda url: (shown.append(url), approve(url))
    )

    query = parse_qs(urlsplit(shown[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["aud"] == [oauth.base_url]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert token.refresh_token and token.scope == SCOPE
    assert oauth.state.codes == {}  # the code was used (and deleted) by the exchange
    path = store.path(oauth.base_url, client.client_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert token.access_token.encode() not in data and token.refresh_token.encode() not in data
    assert store.load(oauth.base_url, client.client_id) == token


def test_login_refuses_a_redirect_with_the_wrong_state(
    oauth: OAuthServer, store: TokenStore
) -> None:
    def forged(url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        callback = query["redirect_uri"][0]
        requests.get(callback, params={"code": "stolen", "state": "not-ours"}, timeout=10)

    with pytest.raises(AuthError, match="wrong state"):
        run_login(oauth, store, CodeClient("public-app"), open_browser=forged)
    assert store.load(oauth.base_url, "public-app") is None


def test_login_reports_a_refused_authorization(oauth: OAuthServer, store: TokenStore) -> None:
    oauth.deny = True
    with pytest.raises(AuthError, match="authorization was refused \\(access_denied"):
        run_login(oauth, store, CodeClient("public-app"))
    assert store.load(oauth.base_url, "public-app") is None


def test_login_needs_an_authorization_endpoint(store: TokenStore) -> None:
    config = SmartConfiguration(token_endpoint="http://127.0.0.1:9/token")
    with pytest.raises(ConfigurationError, match="authorization_endpoint"):
        login(
            config,
            base_url="http://127.0.0.1:9/fhir",
            client=CodeClient("x"),
            scope="",
            store=store,
            open_browser=approve,
        )


def test_refresh_token_is_used_and_rotated(oauth: OAuthServer, store: TokenStore) -> None:
    first = run_login(oauth, store, CodeClient("public-app"))
    tokens = AuthorizationCodeTokenSource(
        token_url=f"{oauth.url}/token",
        base_url=oauth.base_url,
        client=CodeClient("public-app"),
        store=store,
    )
    assert tokens.token() == first  # still fresh: served from the store, no request

    second = tokens.token(force_refresh=True)
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # rotated
    assert store.load(oauth.base_url, "public-app") == second  # the new one is stored at once
    assert oauth.state.by_refresh[first.refresh_token].revoked  # the old one is dead

    third = tokens.token(force_refresh=True)
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)


def test_a_refresh_is_retried_when_the_token_endpoint_is_busy(
    oauth: OAuthServer, store: TokenStore
) -> None:
    """503 twice (the second with Retry-After), then the refresh succeeds; a refusal is not
    retried (the revoked-token test below)."""
    first = run_login(oauth, store, CodeClient("public-app"))
    waits: list[float] = []
    with FaultProxy(oauth.url) as proxy:
        proxy.add(Fault("status", status=503, method="POST", path_contains="/token", count=1))
        proxy.add(
            Fault(
                "status", status=503, retry_after=2, method="POST", path_contains="/token", count=1
            )
        )
        tokens = AuthorizationCodeTokenSource(
            token_url=f"{proxy.url}/token",
            base_url=oauth.base_url,
            client=CodeClient("public-app"),
            store=store,
            retry=RetryPolicy(attempts=3, backoff_s=0.5, max_backoff_s=5),
            sleep=waits.append,
        )
        second = tokens.token(force_refresh=True)
        posts = [status for method, path, status in proxy.requests if path.endswith("/token")]
    assert posts == [503, 503, 200]
    assert second.refresh_token != first.refresh_token
    assert store.load(oauth.base_url, "public-app") == second
    assert waits[1] == 2 and 0.5 <= waits[0] <= 1.0  # the backoff (with jitter), Retry-After


def test_revoked_refresh_token_asks_to_log_in_again(oauth: OAuthServer, store: TokenStore) -> None:
    token = run_login(oauth, store, CodeClient("public-app"))
    revoke = requests.post(
        f"{oauth.url}/revoke",
        data={
            "token": token.refresh_token,
            "token_type_hint": "refresh_token",
            "client_id": "public-app",
        },
        timeout=10,
    )
    assert revoke.status_code == 200
    tokens = AuthorizationCodeTokenSource(
        token_url=f"{oauth.url}/token",
        base_url=oauth.base_url,
        client=CodeClient("public-app"),
        store=store,
    )
    with pytest.raises(AuthError, match="run `fhir-assets auth login` again") as caught:
        tokens.token(force_refresh=True)
    assert token.refresh_token not in str(caught.value)
    assert token.access_token not in str(caught.value)


def test_no_stored_login_asks_to_log_in(oauth: OAuthServer, store: TokenStore) -> None:
    tokens = AuthorizationCodeTokenSource(
        token_url=f"{oauth.url}/token",
        base_url=oauth.base_url,
        client=CodeClient("public-app"),
        store=store,
    )
    with pytest.raises(AuthError, match=r"no stored login.*auth login"):
        tokens.token()


def test_stored_tokens_under_another_key_ask_to_log_in(
    oauth: OAuthServer, store: TokenStore
) -> None:
    run_login(oauth, store, CodeClient("public-app"))
    other = TokenStore(store.directory, Fernet.generate_key())
    with pytest.raises(AuthError, match=r"cannot be decrypted.*auth login"):
        other.load(oauth.base_url, "public-app")


def test_connect_with_authorization_code_searches_and_refreshes_on_401(
    tmp_path: Path,
) -> None:
    with OAuthServer(token_lifetime=3600) as oauth:
        oauth.add_client("public-app", scope=SCOPE)
        store = TokenStore(tmp_path / "tokens", Fernet.generate_key())
        first = run_login(oauth, store, CodeClient("public-app"))
        settings = ServerSettings(
            oauth.base_url,
            client_id="public-app",
            auth_method="authorization-code",
            scopes=SCOPE,
            token_dir=str(store.directory),
            token_key=store.key.decode(),
        )
        with connect(settings) as client:
            assert len(list(client.search("Patient"))) == 3
            oauth.state.by_access[first.access_token].issued_at -= 7200  # it expires early
            assert len(list(client.search("Patient"))) == 3  # 401 -> refresh -> retry
        assert store.load(oauth.base_url, "public-app").refresh_token != first.refresh_token
