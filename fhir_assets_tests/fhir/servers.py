"""Small real HTTP servers on 127.0.0.1 for behaviour the sekmet sandbox lacks.

- :class:`HttpServer`: a threaded server whose routes are plain functions; it records every
  request it receives (method, path, headers), so tests can prove what reached which origin.
- :class:`OAuthServer`: a real OAuth 2.0 authorization server built from authlib's server
  components (authorization code + PKCE S256, refresh tokens with rotation, RFC 7009 revocation,
  client credentials) that also serves a tiny FHIR API protected by its bearer tokens. The user
  "approving" access is simulated: ``/authorize`` approves every valid request at once.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Request, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from requests.structures import CaseInsensitiveDict


@dataclass
class Received:
    """One request a test server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict[str]
    body: bytes


Response = tuple[int, dict[str, str], bytes]
Route = Callable[[Received], Response]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


class HttpServer:
    """A threaded HTTP server on 127.0.0.1:free port; ``routes`` maps a path to a handler."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def handle(self, received: Received) -> Response:
        self.received.append(received)
        route = self.routes.get(received.path)
        if route is None:
            return json_response(404, {"error": "not_found"})
        return route(received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    CaseInsensitiveDict(dict(self.headers.items())),
                    self.rfile.read(length) if length else b"",
                )
                status, headers, body = server.handle(received)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# ---------------------------------------------------------------- the authorization server


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str | None = None
    scope: str = "user/*.rs offline_access"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 8252 section 7.3: any port on the loopback address
        return redirect_uri.startswith("http://127.0.0.1:") and redirect_uri.endswith("/callback")

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(
            self.client_secret, client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token", "client_credentials")


@dataclass
class IssuedToken:
    client_id: str
    access_token: str
    refresh_token: str | None
    scope: str
    expires_in: int
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return "test-user"

    def get_client(self) -> str:
        return self.client_id


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class Request(OAuth2Request):
    def __init__(self, received: Received, base: str) -> None:
        super().__init__(received.method, base + received.path, headers=received.headers)
        self._args = received.query
        self._form = dict(parse_qsl(received.body.decode())) if received.body else {}
        self.payload = BasicOAuth2Payload({**self._args, **self._form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


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


@dataclass
class State:
    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    by_access: dict[str, IssuedToken] = field(default_factory=dict)
    by_refresh: dict[str, IssuedToken] = field(default_factory=dict)


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
