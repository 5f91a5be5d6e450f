"""Access tokens: the :class:`Token` value, the thread-safe :class:`TokenSource` cache, and the
token-endpoint request every grant shares (RFC 6749 section 5).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from .errors import AuthError
from .redaction import scrub as scrub  # re-exported: callers and tests import it from here
from .retry import TRANSIENT_STATUSES, RetryPolicy, retry_after
from .urls import InsecureUrlError, redact, require_https

log = logging.getLogger(__name__)

# Refresh this long before the token expires, so a request never leaves with a dying token;
# short-lived tokens refresh after four fifths of their life instead.
REFRESH_MARGIN_S = 30.0
DEFAULT_LIFETIME_S = 300.0

# token-request fields whose values must never reach a message, even if a server echoes them
SECRET_FIELDS = frozenset(
    {"client_assertion", "client_secret", "refresh_token", "code", "code_verifier"}
)

# Only this much of the server's error/error_description reaches a message (after scrubbing).
DETAIL_CHARS = 300
# RFC 6749 A.12: an access token is 1*VSCHAR
VSCHARS = re.compile(r"[\x20-\x7e]+")

INVALID_CLIENT_CAUSES = (
    "the public key (JWKS) is not registered for this client, or its JWKS URL is not published",
    "the client id is wrong (Epic: non-production and production ids differ)",
    "this machine's clock is skewed (the assertion's iat/exp look wrong to the server)",
    "the client's background/audit user is not mapped on the server (Epic)",
)


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and what the server said about it. ``repr`` never shows a token."""

    access_token: str = field(repr=False)
    expires_at: float
    scope: str = ""
    refresh_token: str | None = field(default=None, repr=False)
    issued_at: float = 0.0

    @property
    def scopes(self) -> tuple[str, ...]:
        """The granted scopes, split."""
        return tuple(self.scope.split())

    def refresh_due(self, now: float) -> bool:
        """Whether the token expires within the refresh margin."""
        lifetime = self.expires_at - (self.issued_at or self.expires_at - DEFAULT_LIFETIME_S)
        margin = min(REFRESH_MARGIN_S, lifetime / 5)
        return now >= self.expires_at - margin


class TokenRequestError(AuthError):
    """The token endpoint refused a request.

    Attributes:
        status: the HTTP status (``None`` if no answer came).
        error: the OAuth ``error`` code (``invalid_client``, ``invalid_grant``...), or ``""``.
    """

    def __init__(self, message: str, *, status: int | None = None, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class TokenBusyError(TokenRequestError):
    """The token endpoint was unreachable or answered a transient status (408, 429, 5xx):
    worth another try (:func:`fetch_token`). ``wait_s`` is its ``Retry-After``, if any."""

    def __init__(self, message: str, *, status: int | None = None, wait_s: float | None = None):
        super().__init__(message, status=status)
        self.wait_s = wait_s


class TokenSource:
    """Caches one access token and fetches a new one when it is close to expiry.

    Subclasses implement :meth:`_fetch`. Thread-safe: concurrent callers share one fetch.
    """

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def token(self, *, force_refresh: bool = False, stale: str | None = None) -> Token:
        """Return a valid token, fetching one if none is cached, it expires soon, or on request.

        Args:
            force_refresh: fetch a new token even if the cached one looks valid.
            stale: an access token the server just refused; refreshed only if it is still the
                cached one (so threads hitting 401 together refresh once).

        Raises:
            AuthError: no token could be obtained.
        """
        with self._lock:
            cached = self._token
            if cached is not None and not force_refresh and not cached.refresh_due(self._now()):
                if stale is None or stale != cached.access_token:
                    return cached
            self._token = self._fetch()
            self.fetches += 1
            return self._token

    def _fetch(self) -> Token:
        raise NotImplementedError


def request_token(
    session: requests.Session,
    token_url: str,
    form: dict[str, str],
    *,
    now: Callable[[], float],
    timeout: float,
    auth: Any = None,
    secrets: Iterable[str] = (),
) -> Token:
    """POST a token request and parse the answer into a :class:`Token` (RFC 6749 section 5).

    Args:
        secrets: values that must never reach an error message (assertion, secret, refresh
            token), scrubbed from whatever the server echoes back.

    Raises:
        TokenRequestError: the endpoint was unreachable, refused, or did not answer OAuth JSON.
    """
    hidden = [*secrets, *(v for k, v in form.items() if k in SECRET_FIELDS)]
    require_https(token_url, "token endpoint")
    try:
        # allow_redirects=False: a GuardedSession follows only same-origin hops (checked by the
        # https rule); any other session hands the redirect back, refused just below. Never
        # does a secret or an assertion follow a redirect to another origin or to plain http.
        response = session.post(
            token_url,
            data=form,
            auth=auth,
            timeout=timeout,
            headers={"Accept": "application/json"},
            allow_redirects=False,
        )
    except InsecureUrlError as exc:
        raise TokenRequestError(f"token endpoint: {exc}") from None
    except requests.RequestException as exc:
        raise TokenBusyError(
            f"token endpoint {redact(token_url)} could not be reached: {type(exc).__name__}"
        ) from None
    if response.is_redirect:
        target = response.headers.get("Location", "")
        raise TokenRequestError(
            f"token endpoint {redact(token_url)} redirected to {redact(target)}: a token request "
            f"is sent only to its own https origin; configure the final URL as FHIR_TOKEN_URL",
            status=response.status_code,
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict) and "access_token" in body:
        return _parse_token(body, token_url, now(), form.get("scope", ""))
    if response.status_code == 200 and isinstance(body, dict) and "error" not in body:
        raise TokenRequestError(
            f"token endpoint {redact(token_url)} answered HTTP 200 with JSON that holds no "
            f"access_token (nor an OAuth error): check FHIR_TOKEN_URL",
            status=200,
        )
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    error, description = scrub(error, hidden), scrub(description, hidden)
    # Only the OAuth error fields reach the message, never the body; scrubbed before cutting,
    # so a cut can never leave part of a secret unrecognised.
    detail = (f"{error}: {description}" if description else error)[:DETAIL_CHARS]
    detail = detail or f"not an OAuth JSON answer but {kind}"
    if response.status_code in TRANSIENT_STATUSES:
        raise TokenBusyError(
            f"token endpoint {redact(token_url)} is busy or failing "
            f"(HTTP {response.status_code}, {detail})",
            status=response.status_code,
            wait_s=retry_after(response.headers, now),
        )
    raise TokenRequestError(
        f"token endpoint {redact(token_url)} refused the request "
        f"(HTTP {response.status_code}, {detail})",
        status=response.status_code,
        error=error[:DETAIL_CHARS],
    )


def _parse_token(body: dict[str, Any], token_url: str, now: float, asked: str) -> Token:
    access = body["access_token"]
    # RFC 6749 A.12: 1*VSCHAR. Anything else (null, a number, a control character that would
    # end the header, where http.client's error would quote it) is no usable token.
    if not isinstance(access, str) or not access or not VSCHARS.fullmatch(access):
        raise TokenRequestError(
            f"token endpoint {redact(token_url)} answered HTTP 200 with an unusable access_token "
            f"(a {type(access).__name__}, not a non-empty string of printable ASCII)",
            status=200,
        )
    try:  # expires_in may come as a string ("3600"), or be missing, 0, negative, NaN, inf
        expires_in = float(body.get("expires_in") or DEFAULT_LIFETIME_S)
    except (TypeError, ValueError):
        expires_in = DEFAULT_LIFETIME_S
    if not math.isfinite(expires_in) or expires_in <= 0:
        expires_in = DEFAULT_LIFETIME_S  # a token due at once would be fetched per request
    log.info("obtained an access token from %s, valid %ss", redact(token_url), int(expires_in))
    refresh = body.get("refresh_token")
    return Token(
        access_token=access,
        expires_at=now + expires_in,
        # RFC 6749 5.1: scope may be omitted when it is what was asked for
        scope=str(body.get("scope") or asked),
        refresh_token=str(refresh) if refresh else None,
        issued_at=now,
    )


def fetch_token(
    request: Callable[[], Token],
    client_id: str,
    sleep: Callable[[float], None],
    retry: RetryPolicy | None = None,
) -> Token:
    """Run the token ``request`` under the server's one :class:`RetryPolicy`: an unreachable
    endpoint, 408, 429 or 5xx is tried again (``Retry-After`` honoured, capped at the policy's
    ``max_backoff_s``); a refusal (4xx such as ``invalid_grant``) is not, except the vendor rule
    of :func:`fetch_with_client_retry` (one more try after ``invalid_client``).

    Raises:
        TokenRequestError: refused, or still failing once the policy's retries are spent.
    """
    policy = retry or RetryPolicy()

    def busy_retried() -> Token:
        return policy.run(
            request,
            retry_on=(TokenBusyError,),
            sleep=sleep,
            before_sleep=lambda exc, wait: log.warning("%s; retrying in %.1fs", exc, wait),
            jitter=True,
        )

    return fetch_with_client_retry(busy_retried, client_id, sleep)


def fetch_with_client_retry(
    fetch: Callable[[], Token], client_id: str, sleep: Callable[[float], None]
) -> Token:
    """Run ``fetch``; retry it once if the server answers ``invalid_client``.

    Epic's token endpoint sometimes answers a bare 400 ``invalid_client`` to a valid client, and
    the next request succeeds; a second refusal is real and is reported with its usual causes.

    Raises:
        TokenRequestError: still refused after the retry, with the usual causes listed.
    """
    try:
        return fetch()
    except TokenRequestError as exc:
        if exc.error != "invalid_client":
            raise
        log.warning("token endpoint answered invalid_client for %s; retrying once", client_id)
    sleep(1.0)
    try:
        return fetch()
    except TokenRequestError as exc:
        if exc.error != "invalid_client":
            raise
        causes = "; ".join(f"({i}) {c}" for i, c in enumerate(INVALID_CLIENT_CAUSES, 1))
        raise TokenRequestError(
            f"{exc} -- the server does not accept client {client_id!r}. Usual causes: {causes}",
            status=exc.status,
            error=exc.error,
        ) from None
