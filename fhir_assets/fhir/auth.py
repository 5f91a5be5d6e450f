"""SMART on FHIR authentication: token sources and a ``requests`` auth object that uses them.

A :class:`TokenSource` obtains and caches an access token, refreshing it shortly before it expires;
it is shared safely by threads. :class:`BearerAuth` adds the token to requests bound for the FHIR
server's own origin only, and retries once with a fresh token when the server answers 401.

Spec: SMART App Launch 2.x, "Backend Services" (client_credentials grant with a ``private_key_jwt``
client assertion, RFC 7523).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey, RSAKey

from .errors import AuthError, ConfigurationError

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART Backend Services: the assertion's exp must be no more than five minutes in the future.
ASSERTION_LIFETIME_S = 240
# Refresh this long before the token expires, so a request never leaves with a dying token.
REFRESH_MARGIN_S = 30

Key = RSAKey | ECKey


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and what the server said about it. ``repr`` never shows the token."""

    access_token: str = field(repr=False)
    expires_at: float
    scope: str = ""


def origin(url: str) -> tuple[str, str, int | None]:
    """Return ``(scheme, host, port)`` with default ports filled in, for same-origin checks."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def load_private_key(source: str | Path, *, kid: str | None = None) -> Key:
    """Load an RSA or EC private key from a PEM or JWK (JSON) file, or from the text itself.

    Args:
        source: a file path, or the PEM/JWK text (for keys passed through an environment variable).
        kid: the key id to use in the assertion header; defaults to the JWK's ``kid`` or the
            RFC 7638 thumbprint.
    """
    text = str(source)
    if not text.lstrip().startswith(("-----BEGIN", "{")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"private key file not found: {path}")
        text = path.read_text()
    last_error: Exception | None = None
    for key_type in (RSAKey, ECKey):
        try:
            key = key_type.import_key(text.strip())
        except (ValueError, TypeError) as exc:
            last_error = exc
            continue
        if not key.is_private:
            raise ConfigurationError(
                "the key is a public key; Backend Services needs the private key"
            )
        if kid:
            return key_type.import_key(key.as_dict(private=True) | {"kid": kid})
        if not key.kid:
            key.ensure_kid()
        return key
    raise ConfigurationError("could not read an RSA or EC private key (PEM or JWK)") from last_error


class TokenSource:
    """Caches one access token and fetches a new one when it is close to expiry.

    Subclasses implement :meth:`_fetch`. Thread-safe: concurrent callers share one fetch.
    """

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._token: Token | None = None

    def token(self, *, force_refresh: bool = False, stale: str | None = None) -> Token:
        """Return a valid token, fetching one if none is cached, it expires soon, or on request.

        Args:
            force_refresh: fetch a new token even if the cached one looks valid.
            stale: an access token the server just refused; refreshed only if it is still the
                cached one (so threads hitting 401 together refresh once).
        """
        with self._lock:
            cached = self._token
            if cached is not None and not force_refresh:
                fresh = cached.expires_at - REFRESH_MARGIN_S > self._now()
                if fresh and (stale is None or stale != cached.access_token):
                    return cached
            self._token = self._fetch()
            return self._token

    def _fetch(self) -> Token:
        raise NotImplementedError


class ClientCredentialsTokenSource(TokenSource):
    """SMART Backend Services: ``client_credentials`` with a ``private_key_jwt`` assertion."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        private_key: Key,
        scope: str,
        alg: str | None = None,
        session: requests.Session | None = None,
        now: Callable[[], float] = time.time,
        jti: Callable[[], str] = lambda: uuid.uuid4().hex,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(now=now)
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.alg = alg or ("ES384" if isinstance(private_key, ECKey) else "RS384")
        self._key = private_key
        self._session = session or requests.Session()
        self._jti = jti
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def assertion(self) -> str:
        """Sign a fresh client assertion: new ``jti``, ``exp`` at most five minutes ahead."""
        issued = int(self._now())
        header = {"kid": self._key.kid, "typ": "JWT"}
        claims = {"jti": self._jti(), "iat": issued, "exp": issued + ASSERTION_LIFETIME_S}
        signed = private_key_jwt_sign(
            self._key, self.client_id, self.token_url, alg=self.alg, claims=claims, header=header
        )
        return signed.decode() if isinstance(signed, bytes) else str(signed)

    def _fetch(self) -> Token:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        return request_token(
            self._session, self.token_url, form, now=self._now, timeout=self._timeout
        )


def request_token(
    session: requests.Session,
    token_url: str,
    form: dict[str, str],
    *,
    now: Callable[[], float],
    timeout: float,
    auth: Any = None,
) -> Token:
    """POST a token request and parse the answer into a :class:`Token` (RFC 6749 section 5)."""
    try:
        response = session.post(
            token_url, data=form, auth=auth, timeout=timeout, headers={"Accept": "application/json"}
        )
    except requests.RequestException as exc:
        raise AuthError(
            f"token endpoint {token_url} could not be reached: {type(exc).__name__}"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = body.get("error", "") if isinstance(body, dict) else ""
        description = body.get("error_description", "") if isinstance(body, dict) else ""
        kind = response.headers.get("Content-Type", "unknown content")
        detail = f"{error}: {description}" if error else f"non-OAuth answer ({kind})"
        raise AuthError(
            f"token endpoint {token_url} refused the request "
            f"(HTTP {response.status_code}, {detail})"
        )
    expires_in = float(body.get("expires_in") or 300)
    log.info("obtained an access token from %s, valid %ss", token_url, int(expires_in))
    return Token(str(body["access_token"]), now() + expires_in, str(body.get("scope", "")))


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
        sent = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        fresh = self.tokens.token(stale=sent)
        response.content
        response.close()
        retry = request.copy()
        retry.headers["Authorization"] = f"Bearer {fresh.access_token}"
        retry._fhir_retried = True  # type: ignore[attr-defined]
        retried = response.connection.send(retry, **kwargs)
        retried.history.append(response)
        retried.request = retry
        return retried
