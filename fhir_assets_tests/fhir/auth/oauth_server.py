"""A real OAuth 2.0 authorization server on 127.0.0.1, built from authlib's server components:
authorization code + PKCE S256, refresh tokens with rotation, RFC 7009 revocation and client
credentials. It also serves a tiny FHIR API protected by its bearer tokens. The user "approving"
access is simulated: ``/authorize`` approves every valid request at once (or denies, on demand).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, ClassVar

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request, grants
from authlib.oauth2.rfc6749.requests import JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge

from .http_server import HttpServer, Received, Response, json_response
from .oauth_models import Client, Code, IssuedToken, Request, State


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]

    def save_authorization_code(self, code: str, request: Request) -> None:
        payload = request.payload.data
        self.server.state.codes[code] = Code(
            code,
            request.client.client_id,
            payload["redirect_uri"],
            request.scope,
            payload.get("code_challenge"),
            payload.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found = self.server.state.codes.get(code)
        return found if found and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.server.state.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> str:
        return "test-user"


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        token = self.server.state.by_refresh.get(refresh_token)
        return token if token and not token.revoked else None

    def authenticate_user(self, refresh_token: IssuedToken) -> str:
        return "test-user"

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        refresh_token.revoked = True


class CredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        state = self.server.state
        return state.by_refresh.get(token_string) or state.by_access.get(token_string)

    def revoke_token(self, token: IssuedToken, request: Request) -> None:
        token.revoked = True


class Authorizer(AuthorizationServer):
    """authlib's framework-neutral AuthorizationServer, bound to :class:`HttpServer` requests."""

    def __init__(self, state: State, base: str, token_lifetime: int) -> None:
        super().__init__()
        self.state = state
        self.base = base
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda *a, **k: secrets.token_urlsafe(32),
                lambda *a, **k: secrets.token_urlsafe(32),
                lambda client, grant_type: token_lifetime,
            ),
        )
        self.register_grant(CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(CredentialsGrant)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> Client | None:
        return self.state.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        issued = IssuedToken(
            request.client.client_id,
            token["access_token"],
            token.get("refresh_token"),
            token.get("scope", ""),
            int(token["expires_in"]),
        )
        self.state.by_access[issued.access_token] = issued
        if issued.refresh_token:
            self.state.by_refresh[issued.refresh_token] = issued

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request if isinstance(request, OAuth2Request) else Request(request, self.base)

    def create_json_request(self, request: Received) -> JsonRequest:
        return JsonRequest(request.method, self.base + request.path, request.headers)

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        out = dict(headers or [])
        if isinstance(body, dict):
            return status, {"Content-Type": "application/json", **out}, json.dumps(body).encode()
        return status, out, (body or "").encode()

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class OAuthServer(HttpServer):
    """Authorization server + a tiny FHIR API at ``/fhir`` protected by its tokens.

    Args:
        token_lifetime: seconds an access token lives.
        well_known: serve ``/fhir/.well-known/smart-configuration`` (else only the
            CapabilityStatement's oauth-uris extension).
    """

    def __init__(self, *, token_lifetime: int = 3600, well_known: bool = True) -> None:
        super().__init__()
        self.state = State()
        self.deny = False
        self.authorizer = Authorizer(self.state, self.url, token_lifetime)
        self.patients: list[dict[str, Any]] = [
            {"resourceType": "Patient", "id": f"p{i}"} for i in range(3)
        ]
        self.routes.update(
            {
                "/authorize": self._authorize,
                "/token": self.authorizer.create_token_response,
                "/revoke": lambda r: self.authorizer.create_endpoint_response("revocation", r),
                "/fhir/metadata": self._metadata,
                "/fhir/Patient": self._patients,
            }
        )
        if well_known:
            self.routes["/fhir/.well-known/smart-configuration"] = self._smart_configuration

    @property
    def base_url(self) -> str:
        return self.url + "/fhir"

    def add_client(self, client_id: str, secret: str | None = None, scope: str = "") -> None:
        self.state.clients[client_id] = Client(client_id, secret, scope or Client.scope)

    def _authorize(self, received: Received) -> Response:
        grant = self.authorizer.get_consent_grant(received, end_user="test-user")
        user = None if self.deny else "test-user"  # None: the user clicked "deny"
        return self.authorizer.create_authorization_response(
            Request(received, self.url), grant_user=user, grant=grant
        )

    def _smart_configuration(self, received: Received) -> Response:
        return json_response(
            200,
            {
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "revocation_endpoint": f"{self.url}/revoke",
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["user/*.rs", "offline_access"],
                "capabilities": ["permission-v2", "client-public", "client-confidential-symmetric"],
            },
        )

    def _metadata(self, received: Received) -> Response:
        oauth = {
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "token", "valueUri": f"{self.url}/token"},
                {"url": "authorize", "valueUri": f"{self.url}/authorize"},
            ],
        }
        rest = {"mode": "server", "security": {"extension": [oauth]}}
        return json_response(200, {"resourceType": "CapabilityStatement", "rest": [rest]})

    def valid_bearer(self, received: Received) -> bool:
        sent = received.headers.get("authorization", "").removeprefix("Bearer ")
        token = self.state.by_access.get(sent)
        return token is not None and not token.revoked and not token.is_expired()

    def _patients(self, received: Received) -> Response:
        if not self.valid_bearer(received):
            return json_response(401, {"resourceType": "OperationOutcome", "issue": []})
        entries = [{"resource": p, "search": {"mode": "match"}} for p in self.patients]
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        return json_response(200, bundle)
