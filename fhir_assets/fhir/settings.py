"""How to reach and authenticate with one FHIR server, and the client built from that.

:class:`ServerSettings` is plain configuration (the Dagster resource and the CLI both fill it from
``FHIR_*`` environment variables); :func:`connect` turns it into a ready :class:`FhirClient`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import requests

from .auth import BearerAuth, ClientCredentialsTokenSource, load_private_key
from .client import FhirClient, RetryPolicy
from .errors import ConfigurationError, FhirError


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Connection settings for one FHIR server. ``repr`` never shows secrets.

    Attributes:
        base_url: the FHIR base URL.
        client_id: the SMART client id; ``None`` for an open server.
        private_key: path to (or text of) the Backend Services private key, PEM or JWK.
        scopes: the scopes to request.
        token_url: the token endpoint; discovered from ``.well-known/smart-configuration`` if unset.
        timeout_s: seconds to wait for connect and for each read.
    """

    base_url: str
    client_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    scopes: str = "system/*.read"
    token_url: str | None = None
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def discover_token_url(base_url: str, *, timeout: float = 30.0) -> str:
    """Read the token endpoint from ``{base}/.well-known/smart-configuration`` (SMART 2.x)."""
    url = base_url.rstrip("/") + "/.well-known/smart-configuration"
    try:
        response = requests.get(url, headers={"Accept": "application/json"}, timeout=timeout)
        config = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError) as exc:
        raise FhirError(
            f"could not read SMART configuration at {url}: {type(exc).__name__}"
        ) from exc
    if not isinstance(config, dict) or not isinstance(config.get("token_endpoint"), str):
        raise FhirError(f"{url} has no token_endpoint; set the token URL explicitly")
    return str(config["token_endpoint"])


def connect(settings: ServerSettings) -> FhirClient:
    """Build a :class:`FhirClient` for ``settings``, with Backend Services auth when configured."""
    auth = None
    if settings.client_id:
        if not settings.private_key:
            raise ConfigurationError(
                f"client {settings.client_id!r} has no private key: set FHIR_PRIVATE_KEY_PATH"
            )
        tokens = ClientCredentialsTokenSource(
            token_url=settings.token_url or discover_token_url(settings.base_url),
            client_id=settings.client_id,
            private_key=load_private_key(settings.private_key),
            scope=settings.scopes,
            timeout=settings.timeout_s,
        )
        auth = BearerAuth(tokens, settings.base_url)
    return FhirClient(
        settings.base_url, auth=auth, timeout=settings.timeout_s, retry=settings.retry
    )
