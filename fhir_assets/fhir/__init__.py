"""A pure FHIR R4 / SMART on FHIR client library.

Imports requests, authlib, joserfc and orjson only; never dagster or pandas, so it can be used on
its own from a notebook or a script::

    from fhir_assets.fhir import ServerSettings, connect

    with connect(ServerSettings(base_url, client_id="...", private_key="key.pem")) as client:
        for patient in client.search("Patient"):
            ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_attributes

if TYPE_CHECKING:
    from .auth import (
        BearerAuth,
        ClientCredentialsTokenSource,
        ClientSecretTokenSource,
        Token,
        TokenSource,
        load_private_key,
    )
    from .client import FhirClient, Page, RetryPolicy
    from .errors import (
        AuthError,
        ConfigurationError,
        FhirError,
        PagingError,
        RequestError,
        ResponseFormatError,
        TransientRequestError,
    )
    from .factory import build_client, connect
    from .limits import Limits
    from .login import AuthorizationCodeTokenSource, CodeClient
    from .scopes import minimal_scopes, parse_scope, require_read
    from .settings import (
        ServerSettings,
        check_read_access,
        discover_token_url,
        token_source,
    )
    from .smart import SmartConfiguration, discover
    from .token_store import TokenStore
    from .tokens import TokenRequestError

# Names are imported when first used (PEP 562): code that needs one module (``names``,
# ``ndjson``: ``fhir-assets land``) does not pay for authlib, requests and cryptography.
_HOMES = {
    "AuthError": "errors",
    "AuthorizationCodeTokenSource": "login",
    "BearerAuth": "auth",
    "ClientCredentialsTokenSource": "auth",
    "ClientSecretTokenSource": "auth",
    "CodeClient": "login",
    "ConfigurationError": "errors",
    "FhirClient": "client",
    "FhirError": "errors",
    "Limits": "limits",
    "Page": "client",
    "PagingError": "errors",
    "RequestError": "errors",
    "ResponseFormatError": "errors",
    "RetryPolicy": "client",
    "ServerSettings": "settings",
    "SmartConfiguration": "smart",
    "Token": "auth",
    "TokenRequestError": "tokens",
    "TokenSource": "auth",
    "TokenStore": "token_store",
    "TransientRequestError": "errors",
    "build_client": "factory",
    "check_read_access": "settings",
    "connect": "factory",
    "discover": "smart",
    "discover_token_url": "settings",
    "load_private_key": "auth",
    "minimal_scopes": "scopes",
    "parse_scope": "scopes",
    "require_read": "scopes",
    "token_source": "settings",
}


__getattr__ = lazy_attributes(__name__, _HOMES)

__all__ = [
    "AuthError",
    "AuthorizationCodeTokenSource",
    "BearerAuth",
    "ClientCredentialsTokenSource",
    "ClientSecretTokenSource",
    "CodeClient",
    "ConfigurationError",
    "FhirClient",
    "FhirError",
    "Limits",
    "Page",
    "PagingError",
    "RequestError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerSettings",
    "SmartConfiguration",
    "Token",
    "TokenRequestError",
    "TokenSource",
    "TokenStore",
    "TransientRequestError",
    "build_client",
    "check_read_access",
    "connect",
    "discover",
    "discover_token_url",
    "load_private_key",
    "minimal_scopes",
    "parse_scope",
    "require_read",
    "token_source",
]
