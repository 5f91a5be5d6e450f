"""SMART on FHIR authentication: client-credentials token sources and a ``requests`` auth object.

:class:`ClientCredentialsTokenSource` is SMART Backend Services (``client_credentials`` with a
``private_key_jwt`` client assertion, RFC 7523); :class:`ClientSecretTokenSource` authenticates
with a client secret (``client_secret_basic`` or ``client_secret_post``, RFC 6749 section 2.3.1).
:class:`BearerAuth` adds the token to requests bound for the FHIR server's own origin only, and
retries once with a fresh token when the server answers 401.

Spec: SMART App Launch 2.x, "Backend Services".
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth
from authlib.oauth2.rfc7523 import private_key_jwt_sign

from .errors import ConfigurationError
from .http import new_session
from .keys import Key, algorithm_for, load_private_key
from .redaction import client_secrets
from .retry import RetryPolicy
from .tokens import Token, TokenSource, fetch_token, request_token
from .urls import origin, require_https

__all__ = [
    "BearerAuth",
    "ClientCredentialsTokenSource",
    "ClientSecretTokenSource",
    "Token",
    "TokenSource",
    "load_private_key",
    "origin",
    "request_token",
]

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART Backend Services: the assertion's exp must be no more than five minutes in the future.
ASSERTION_LIFETIME_S = 240
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class ClientCredentialsTokenSource(TokenSource):
    """SMART Backend Services: ``client_credentials`` with a ``private_key_jwt`` assertion.

    Args:
        token_url: the token endpoint (also the assertion's ``aud``).
        client_id: the registered client id (``iss`` and ``sub`` of the assertion).
        private_key: the RSA (RS384) or EC P-384 (ES384) private key.
        scope: the scopes to request, space-separated.
        alg: the signing algorithm; RS384 or ES384 from the key type if unset.
        jku: the URL of the client's published JWKS, sent as the ``jku`` header when set.
        now, jti, sleep: injectable clock, assertion-id generator and sleep (for tests).
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        private_key: Key,
        scope: str,
        alg: str | None = None,
        jku: str | None = None,
        session: requests.Session | None = None,
        now: Callable[[], float] = time.time,
        jti: Callable[[], str] = lambda: uuid.uuid4().hex,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(now=now)
        self.token_url = require_https(token_url, "token endpoint")
        self.client_id = client_id
        self.scope = scope
        self.alg = alg or algorithm_for(private_key)
        # the server fetches the JWKS from jku: over http, anyone between could swap the keys
        self.jku = require_https(jku, "jku (JWKS URL)") if jku else None
        self._key = private_key
        self._session = session or new_session()
        self._jti = jti
        self._sleep = sleep
        self._timeout = timeout
        self.retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def assertion(self) -> str:
        """Sign a fresh client assertion: new ``jti``, ``exp`` at most five minutes ahead."""
        issued = int(self._now())
        header: dict[str, Any] = {"kid": self._key.kid, "typ": "JWT"}
        if self.jku:
            header["jku"] = self.jku
        # A new dict every call: authlib's signer writes into the claims it is given.
        claims = {"jti": self._jti(), "iat": issued, "exp": issued + ASSERTION_LIFETIME_S}
        signed = private_key_jwt_sign(
            self._key, self.client_id, self.token_url, alg=self.alg, claims=claims, header=header
        )
        return signed.decode() if isinstance(signed, bytes) else str(signed)

    def _fetch(self) -> Token:
        return fetch_token(self._request, self.client_id, self._sleep, self.retry)

    def _request(self) -> Token:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        return request_token(
            self._session, self.token_url, form, now=self._now, timeout=self._timeout
        )


class ClientSecretTokenSource(TokenSource):
    """``client_credentials`` authenticated with a client secret (RFC 6749 section 2.3.1).

    Args:
        method: ``client_secret_basic`` (HTTP Basic, the RFC's default) or ``client_secret_post``
            (id and secret in the form, for servers that want it).
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str,
        method: str = "client_secret_basic",
        session: requests.Session | None = None,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(now=now)
        if method not in SECRET_METHODS:
            raise ConfigurationError(f"unknown client secret method {method!r}: {SECRET_METHODS}")
        self.token_url = require_https(token_url, "token endpoint")
        self.client_id = client_id
        self.scope = scope
        self.method = method
        self._secret = client_secret
        self._session = session or new_session()
        self._sleep = sleep
        self._timeout = timeout
        self.retry = retry or RetryPolicy()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"method={self.method!r})"
        )

    def _fetch(self) -> Token:
        return fetch_token(self._request, self.client_id, self._sleep, self.retry)

    def _request(self) -> Token:
        # authlib sends Basic base64(id:secret) without RFC 6749 2.3.1's form-urlencoding first,
        # as most servers expect (identical for the usual [A-Za-z0-9-_] secrets).
        auth = OAuth2ClientAuth(self.client_id, self._secret, self.method)
        form = {"grant_type": "client_credentials", "scope": self.scope}
        return request_token(
            self._session,
            self.token_url,
            form,
            now=self._now,
            timeout=self._timeout,
            auth=auth,
            secrets=client_secrets(self.client_id, self._secret),
        )


class BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer`` to requests for one origin; refreshes once on 401.

    Requests to any other origin (a ``next`` link, a download URL, a redirect target) leave
    without the header: a token must never reach a host other than the FHIR server's.
    """

    def __init__(self, tokens: TokenSource, server_url: str) -> None:
        self.tokens = tokens
        self.origin = origin(server_url)

    def __repr__(self) -> str:
        return f"BearerAuth(origin={self.origin!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin(request.url or "") != self.origin:
            request.headers.pop("Authorization", None)
            return request
        request.headers["Authorization"] = f"Bearer {self.tokens.token().access_token}"
        request.register_hook("response", self._retry_once_on_401)  # type: ignore[no-untyped-call]
        return request

    def _retry_once_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if response.status_code != 401 or getattr(request, "_fhir_retried", False):
            return response
        if origin(request.url or "") != self.origin:
            return response  # a redirect target answered 401: never hand it a token
        sent = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        fresh = self.tokens.token(stale=sent)
        log.info("the server refused the access token (401); retrying once with a fresh one")
        response.close()  # its body unread: a 401's body may be endless (http.py reads bounded)
        retry = request.copy()
        retry.headers["Authorization"] = f"Bearer {fresh.access_token}"
        retry._fhir_retried = True  # type: ignore[attr-defined]
        retried = response.connection.send(retry, **kwargs)
        retried.history.append(response)
        retried.request = retry
        return retried
