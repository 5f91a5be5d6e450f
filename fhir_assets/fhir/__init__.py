"""A pure FHIR R4 / SMART on FHIR client library.

Imports requests, authlib, joserfc and orjson only; never dagster or pandas, so it can be used on
its own from a notebook or a script::

    from fhir_assets.fhir import ServerSettings, connect

    with connect(ServerSettings(base_url, client_id="...", private_key="key.pem")) as client:
        for patient in client.search("Patient"):
            ...
"""

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
from .login import AuthorizationCodeTokenSource, CodeClient, login
from .scopes import minimal_scopes, parse_scope, require_read
from .settings import (
    ServerSettings,
    check_read_access,
    connect,
    discover_token_url,
    token_source,
)
from .smart import SmartConfiguration, discover
from .token_store import TokenStore
from .tokens import TokenRequestError

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
    "check_read_access",
    "connect",
    "discover",
    "discover_token_url",
    "load_private_key",
    "login",
    "minimal_scopes",
    "parse_scope",
    "require_read",
    "token_source",
]
