"""Pieces of the authorization-code flow: PKCE (RFC 7636, S256), the authorize URL, and a loopback
receiver for the redirect (RFC 8252 section 7.3: native apps listen on 127.0.0.1, any free port).
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .errors import AuthError

CALLBACK_PATH = "/callback"


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE verifier and its S256 challenge; a fresh pair for every login."""

    verifier: str = field(repr=False)
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        """A new random verifier (64 characters: within RFC 7636's 43-128)."""
        verifier = generate_token(64)
        return cls(verifier, create_s256_code_challenge(verifier))


def authorize_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    pkce: Pkce,
    aud: str,
) -> str:
    """The URL the user opens to approve access (SMART App Launch 2.x, "Obtain authorization
    code": ``aud`` is the FHIR base URL, PKCE S256 is required)."""
    params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", state),
        ("aud", aud),
        ("code_challenge", pkce.challenge),
        ("code_challenge_method", "S256"),
    ]
    return str(add_params_to_uri(endpoint, params))


class LoopbackReceiver:
    """An HTTP server on 127.0.0.1 that waits for one authorization redirect. Context manager."""

    def __init__(self, port: int = 0) -> None:
        self._params: dict[str, str] | None = None
        self._arrived = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        # a short poll interval: shutdown() waits for it once the redirect has arrived
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def redirect_uri(self) -> str:
        """Where the authorization server must send the browser."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{CALLBACK_PATH}"

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters (``code`` and ``state``, or ``error``).

        Raises:
            AuthError: no redirect within ``timeout`` seconds.
        """
        if not self._arrived.wait(timeout) or self._params is None:
            raise AuthError(
                f"no authorization redirect arrived within {timeout:.0f}s: open the printed URL "
                f"in a browser on this machine and approve access"
            )
        return self._params

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH or receiver._arrived.is_set():
                    self.send_error(404)
                    return
                receiver._params = dict(parse_qsl(parts.query))
                receiver._arrived.set()
                failed = "error" in receiver._params
                message = "Login failed; see the terminal." if failed else "Login complete."
                body = f"<html><body><p>{html.escape(message)} You can close this tab.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body + "</body></html>").encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the query string holds the authorization code: never log it

        return Handler
