"""Authorization code + PKCE (user-delegated access) and the refresh-token source it leaves.

:func:`login` runs the interactive flow once and stores the tokens (:mod:`.token_store`);
:class:`AuthorizationCodeTokenSource` then serves access tokens from the store, using and
rotating the refresh token, for as long as the server honours it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth

from .errors import AuthError, ConfigurationError
from .http import new_session
from .pkce import LoopbackReceiver, Pkce, authorize_url
from .redaction import client_secrets
from .retry import RetryPolicy
from .smart import SmartConfiguration
from .token_store import TokenStore
from .tokens import Token, TokenRequestError, TokenSource, fetch_token, request_token
from .urls import require_https

log = logging.getLogger(__name__)

RELOGIN = "run `fhir-assets auth login` again"


@dataclass(frozen=True, slots=True)
class CodeClient:
    """A client registered for the authorization-code flow.

    Attributes:
        client_id: the registered id.
        client_secret: for a confidential client (sent with ``client_secret_basic``); ``None`` for
            a public client, which sends its id in the form.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)

    def auth(self) -> OAuth2ClientAuth | None:
        """The client authentication for the token endpoint (RFC 6749 section 2.3)."""
        if self.client_secret is None:
            return None
        return OAuth2ClientAuth(self.client_id, self.client_secret, "client_secret_basic")

    def secrets(self) -> list[str]:
        """The secret values an echoed error must never show (see ``redaction.client_secrets``)."""
        return client_secrets(self.client_id, self.client_secret)


def login(
    config: SmartConfiguration,
    *,
    base_url: str,
    client: CodeClient,
    scope: str,
    store: TokenStore,
    open_browser: Callable[[str], object],
    echo: Callable[[str], object] = log.info,
    timeout: float = 300.0,
    now: Callable[[], float] = time.time,
    port: int = 0,
) -> Token:
    """Run the authorization-code flow with PKCE and store the tokens.

    Args:
        config: the server's SMART configuration (needs an ``authorization_endpoint``).
        base_url: the FHIR base URL (the ``aud`` of the request and the store's key).
        open_browser: opens the URL for the user (``webbrowser.open``); it may do nothing.
        echo: shows the URL to the user, in case no browser opens.
        timeout: seconds to wait for the user to approve.

    Raises:
        ConfigurationError: the server has no authorization endpoint.
        AuthError: the user or server refused, ``state`` did not match, or the exchange failed.
    """
    if not config.authorization_endpoint:
        raise ConfigurationError(
            f"{base_url} advertises no authorization_endpoint: it does not offer the "
            f"authorization-code flow (use backend-services or a client secret)"
        )
    require_https(config.authorization_endpoint, "authorization endpoint")
    pkce, state = Pkce.new(), secrets.token_urlsafe(24)
    with LoopbackReceiver(port) as receiver:
        url = authorize_url(
            config.authorization_endpoint,
            client_id=client.client_id,
            redirect_uri=receiver.redirect_uri,
            scope=scope,
            state=state,
            pkce=pkce,
            aud=base_url,
        )
        echo(f"Open this URL to approve access:\n\n  {url}\n")
        open_browser(url)
        params = receiver.wait(timeout)
    code = _check_redirect(params, state)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": receiver.redirect_uri,
        "code_verifier": pkce.verifier,
    }
    if client.client_secret is None:
        form["client_id"] = client.client_id
    token = request_token(
        new_session(),
        config.token_endpoint,
        form,
        now=now,
        timeout=30.0,
        auth=client.auth(),
        secrets=client.secrets(),
    )
    store.save(base_url, client.client_id, token)
    return token


def _check_redirect(params: dict[str, str], state: str) -> str:
    """The authorization code, once the redirect is proven to answer our own request."""
    if params.get("state") != state:
        # RFC 6749 section 10.12: a redirect without our state may be forged (CSRF).
        raise AuthError("the authorization redirect carried the wrong state: login aborted")
    if "error" in params:
        reason = params.get("error_description") or ""
        raise AuthError(
            f"authorization was refused ({params['error']}{': ' if reason else ''}{reason[:200]})"
        )
    if not params.get("code"):
        raise AuthError("the authorization redirect carried no code")
    return params["code"]


class AuthorizationCodeTokenSource(TokenSource):
    """Access tokens from a stored login: the stored token while fresh, then the refresh token.

    A rotated refresh token (RFC 6749 section 6; OAuth 2.1 requires rotation for public clients)
    replaces the old one in the store at once, since the old one stops working.
    """

    def __init__(
        self,
        *,
        token_url: str,
        base_url: str,
        client: CodeClient,
        store: TokenStore,
        session: requests.Session | None = None,
        now: Callable[[], float] = time.time,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(now=now)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self.token_url = token_url
        self.base_url = base_url
        self.client = client
        self._store = store
        self._session = session or new_session()
        self._timeout = timeout
        self._stored_used = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self.token_url!r}, client={self.client!r})"

    def token(self, *, force_refresh: bool = False, stale: str | None = None) -> Token:
        """See :meth:`TokenSource.token`; ``force_refresh`` always uses the refresh token."""
        if force_refresh:
            self._stored_used = True
        return super().token(force_refresh=force_refresh, stale=stale)

    def _fetch(self) -> Token:
        stored = self._store.load(self.base_url, self.client.client_id)
        if stored is None:
            raise AuthError(
                f"no stored login for client {self.client.client_id!r} at "
                f"{self.base_url}: {RELOGIN}"
            )
        if not self._stored_used and not stored.refresh_due(self._now()):
            self._stored_used = True  # once: after that the server may have refused it
            return stored
        if not stored.refresh_token:
            raise AuthError(
                f"the stored access token expired and there is no refresh token "
                f"(ask for offline_access): {RELOGIN}"
            )
        token = self._refresh(stored)
        self._store.save(self.base_url, self.client.client_id, token)
        return token

    def _refresh(self, stored: Token) -> Token:
        refresh = stored.refresh_token or ""
        form = {"grant_type": "refresh_token", "refresh_token": refresh}
        if self.client.client_secret is None:
            form["client_id"] = self.client.client_id

        def request() -> Token:
            return request_token(
                self._session,
                self.token_url,
                form,
                now=self._now,
                timeout=self._timeout,
                auth=self.client.auth(),
                secrets=self.client.secrets(),
            )

        try:  # an unreachable endpoint, 408, 429 or 5xx is tried again, as for every token
            token = fetch_token(request, self.client.client_id, self._sleep, self.retry)
        except TokenRequestError as exc:
            if exc.error in ("invalid_grant", "invalid_token"):
                raise TokenRequestError(
                    f"the server no longer accepts the stored refresh token (revoked, expired "
                    f"or already used): {RELOGIN}",
                    status=exc.status,
                    error=exc.error,
                ) from None
            raise
        # No new refresh token: the server keeps the old one valid (no rotation). No scope: the
        # grant is unchanged (RFC 6749 section 5.1).
        token = Token(
            token.access_token,
            token.expires_at,
            token.scope or stored.scope,
            token.refresh_token or refresh,
            token.issued_at,
        )
        log.info("refreshed the access token of client %s", self.client.client_id)
        return token
