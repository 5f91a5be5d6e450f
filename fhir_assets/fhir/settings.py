"""How to reach and authenticate with one FHIR server, and the client built from that.

:class:`ServerSettings` is plain configuration (built from ``fhir_assets.settings.FhirSettings``,
the one place the ``FHIR_*`` variables are spelled, by the Dagster resource and the CLI);
``factory.build_client`` turns it into a ready :class:`FhirClient`, and :func:`token_source`
gives the one token cache per server and client that every client of this process shares.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .auth import ClientCredentialsTokenSource, ClientSecretTokenSource
from .client import RetryPolicy
from .errors import ConfigurationError
from .http import new_session
from .keys import load_private_key
from .limits import Limits
from .login import AuthorizationCodeTokenSource, CodeClient
from .scopes import minimal_scopes, require_read
from .smart import SmartConfiguration, discover
from .token_store import DEFAULT_DIR, TokenStore, fernet_key, legacy_keys, resolve_key
from .tokens import TokenSource
from .urls import require_https

log = logging.getLogger(__name__)

AUTH_METHODS = (
    "backend-services",
    "client-secret-basic",
    "client-secret-post",
    "authorization-code",
    "none",
)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Connection settings for one FHIR server. ``repr`` never shows secrets.

    Attributes:
        base_url: the FHIR base URL.
        client_id: the SMART client id; ``None`` for an open server.
        private_key: path to (or text of) the Backend Services private key, PEM or JWK.
        client_secret: the client secret (client-secret methods, confidential code-flow client).
        auth_method: one of :data:`AUTH_METHODS`; inferred from what is set when ``None``.
        scopes: the scopes to request; ``None`` computes the least set for ``resource_types``.
        resource_types: the types a run reads (for the computed scopes).
        token_url: the token endpoint; discovered from ``.well-known/smart-configuration`` if unset.
        jku: URL of the client's published JWKS, sent in the assertion header when set.
        headers: extra headers on every FHIR request (vendor profiles fill this).
        token_dir: where the authorization-code flow keeps its encrypted tokens.
        token_key: the key of those files (``FHIR_TOKEN_KEY``); the OS keyring if unset.
        timeout_s: seconds to wait for connect and for each read.
        retry: the one retry policy of every request to this server.
        server_profile: the vendor profile's name; detected from ``/metadata`` when ``None``.
        requests_per_s: the request rate (default: the profile's).
        rate_limit_postgres: a PostgreSQL DSN sharing that rate across machines (default: a
            file shared by this machine's processes).
        limits: bounds and deadlines on what the server sends.
    """

    base_url: str
    client_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    auth_method: str | None = None
    scopes: str | None = None
    resource_types: tuple[str, ...] = ()
    token_url: str | None = None
    jku: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    token_dir: str | None = None
    token_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    server_profile: str | None = None
    requests_per_s: float | None = None
    rate_limit_postgres: str | None = field(default=None, repr=False)
    limits: Limits = field(default_factory=Limits)

    def method(self) -> str:
        """The auth method: the configured one, else inferred from the credentials that are set.

        Raises:
            ConfigurationError: an unknown method, or one whose credentials are missing.
        """
        method = self.auth_method or _infer_method(self)
        if method not in AUTH_METHODS:
            raise ConfigurationError(
                f"unknown FHIR_AUTH_METHOD {method!r}: use one of {', '.join(AUTH_METHODS)}"
            )
        needs = {
            "backend-services": ("private_key", "FHIR_PRIVATE_KEY_PATH or FHIR_PRIVATE_KEY"),
            "client-secret-basic": ("client_secret", "FHIR_CLIENT_SECRET"),
            "client-secret-post": ("client_secret", "FHIR_CLIENT_SECRET"),
        }
        if method != "none" and not self.client_id:
            raise ConfigurationError(f"auth method {method} needs a client id: set FHIR_CLIENT_ID")
        if method in needs and not getattr(self, needs[method][0]):
            raise ConfigurationError(
                f"auth method {method} for client {self.client_id!r} needs "
                f"a credential: set {needs[method][1]}"
            )
        return method


def _infer_method(settings: ServerSettings) -> str:
    if not settings.client_id:
        return "none"
    if settings.private_key:
        return "backend-services"
    if settings.client_secret:
        return "client-secret-basic"
    return "authorization-code"


def requested_scopes(settings: ServerSettings, config: SmartConfiguration | None) -> str:
    """The scopes to ask for: the configured ones, else the least set for the run's types in the
    SMART version the server advertises (v2 when it offers ``permission-v2``)."""
    if settings.scopes:
        return settings.scopes
    user = settings.method() == "authorization-code"
    context, extra = ("user", ("offline_access",)) if user else ("system", ())
    v2 = config is not None and config.supports_v2_scopes
    if not settings.resource_types:
        return " ".join([f"{context}/*.{'rs' if v2 else 'read'}", *extra])
    return minimal_scopes(settings.resource_types, v2=v2, context=context, extra=extra)


def build_token_source(settings: ServerSettings) -> TokenSource | None:
    """A new token source for ``settings`` (``None`` for an open server); discovers the token
    endpoint and scope version when they are not configured."""
    require_https(settings.base_url, "FHIR base URL")
    method = settings.method()
    if method == "none":
        return None
    if settings.token_url is not None:
        require_https(settings.token_url, "token endpoint")
    session = new_session(settings.limits)  # the operator's bounds, on every answer
    config = None
    if settings.token_url is None or settings.scopes is None:
        config = discover(settings.base_url, session=session, timeout=settings.timeout_s)
    token_url = settings.token_url or (config.token_endpoint if config else "")
    scope = requested_scopes(settings, config)
    client_id = settings.client_id or ""
    timeout = settings.timeout_s
    if method == "backend-services":
        key = load_private_key(settings.private_key or "")
        return ClientCredentialsTokenSource(
            token_url=token_url,
            client_id=client_id,
            private_key=key,
            scope=scope,
            jku=settings.jku,
            timeout=timeout,
            retry=settings.retry,
            session=session,
        )
    if method.startswith("client-secret"):
        return ClientSecretTokenSource(
            token_url=token_url,
            client_id=client_id,
            client_secret=settings.client_secret or "",
            scope=scope,
            method=_secret_method(settings, method, config),
            timeout=timeout,
            retry=settings.retry,
            session=session,
        )
    return AuthorizationCodeTokenSource(
        token_url=token_url,
        base_url=settings.base_url,
        client=CodeClient(client_id, settings.client_secret),
        store=token_store(settings),
        timeout=timeout,
        retry=settings.retry,
        session=session,
    )


def _secret_method(settings: ServerSettings, method: str, config: SmartConfiguration | None) -> str:
    """The client-secret method: the configured one; when inferred, ``client_secret_post`` if
    the server advertises only that (RFC 8414 ``token_endpoint_auth_methods_supported``)."""
    wire = method.replace("-", "_")
    offered = config.token_endpoint_auth_methods_supported if config else ()
    if settings.auth_method is None and "client_secret_post" in offered:
        if "client_secret_basic" not in offered:
            return "client_secret_post"
    return wire


def token_store(settings: ServerSettings) -> TokenStore:
    """The encrypted token store the authorization-code flow uses for these settings."""
    directory = Path(settings.token_dir) if settings.token_dir else DEFAULT_DIR
    if not settings.token_key:
        return TokenStore(directory, resolve_key({}))
    key = fernet_key(settings.token_key, directory)
    return TokenStore(directory, key, legacy_keys(settings.token_key))


_SOURCES: dict[str, TokenSource | None] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(settings: ServerSettings) -> TokenSource | None:
    """The token source of this process for ``settings``: one cache per server, client and
    credential, shared by every client and thread (so a run fetches one token, not one per asset).
    """
    material = "\n".join(
        str(v)
        for v in (
            settings.base_url,
            settings.token_url,
            settings.client_id,
            settings.method(),
            settings.scopes,
            settings.resource_types,
            settings.jku,
            settings.token_dir,
            settings.private_key,
            settings.client_secret,
            settings.token_key,
        )
    )
    cache_key = hashlib.sha256(material.encode()).hexdigest()
    with _SOURCES_LOCK:
        if cache_key not in _SOURCES:
            _SOURCES[cache_key] = build_token_source(settings)
        return _SOURCES[cache_key]


def check_read_access(settings: ServerSettings, resource_types: Iterable[str]) -> None:
    """Obtain a token and fail if its scopes do not let this client read every type.

    Raises:
        AuthError: no token, or a missing scope (named in the message).
    """
    tokens = token_source(settings)
    if tokens is not None:
        require_read(tokens.token().scope, resource_types)


def discover_token_url(base_url: str, *, timeout: float = 30.0) -> str:
    """The token endpoint from SMART discovery (kept for callers of the first version)."""
    return discover(base_url, timeout=timeout).token_endpoint
