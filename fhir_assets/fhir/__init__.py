"""A pure FHIR R4 / SMART on FHIR client library.

Imports requests, authlib, joserfc and orjson only; never dagster or pandas, so it can be used on
its own from a notebook or a script::

    from fhir_assets.fhir import ServerSettings, connect

    with connect(ServerSettings(base_url, client_id="...", private_key="key.pem")) as client:
        for patient in client.search("Patient"):
            ...
"""

from .auth import BearerAuth, ClientCredentialsTokenSource, Token, TokenSource, load_private_key
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
from .settings import ServerSettings, connect, discover_token_url

__all__ = [
    "AuthError",
    "BearerAuth",
    "ClientCredentialsTokenSource",
    "ConfigurationError",
    "FhirClient",
    "FhirError",
    "Page",
    "PagingError",
    "RequestError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerSettings",
    "Token",
    "TokenSource",
    "TransientRequestError",
    "connect",
    "discover_token_url",
    "load_private_key",
]
