"""A hostile FHIR server on 127.0.0.1: it controls the manifest, the file names, the ``next``
links and every byte of every error body, as a compromised server, proxy or bucket would.

Routes (all on one origin; a second instance serves as "another origin"):
    POST /token            echoes the request back: its Authorization header and form body, raw,
                           in the OAuth ``error_description`` (and JSON-escaped in the body)
    GET  /fhir/.well-known/smart-configuration
    GET  /fhir/<Type>      a searchset whose ``next`` link is ``next_url``
    GET  /fhir/$export     202 to /fhir/status;  GET /fhir/status: ``manifest``; DELETE: 202
    GET  /files/<name>     ``files[name]``
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

CLIENT_ID = "hostile-client"
# A secret with characters that change under every encoding: URL (/+ =&), JSON (" \), base64.
SECRET = 'S3cr3t/+= &"\\-k9Q2xVw7TzL'
TOKEN = "hostile-access-token-0b9f5e2c"


def encodings(secret: str, client_id: str = CLIENT_ID) -> dict[str, str]:
    """Every form in which ``secret`` could leak, by name (computed here independently of the
    code under test)."""
    pair = f"{client_id}:{secret}".encode()
    form_pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {
        "raw": secret,
        "form": quote_plus(secret),
        "url": quote(secret, safe=""),
        "json": json.dumps(secret)[1:-1],
        "basic": base64.b64encode(pair).decode(),
        "basic-form": base64.b64encode(form_pair).decode(),
        "secret-base64": base64.b64encode(secret.encode()).decode(),
    }


def leaks(text: str, secret: str = SECRET) -> list[str]:
    """The names of the encodings of ``secret`` (and of the access token) found in ``text``,
    whole or as the first 8 characters of their secret part (what a cut leaves)."""
    found = []
    for name, form in encodings(secret).items():
        # base64 of "hostile-client:" (15 bytes) is 20 characters; the secret's part follows
        start = 20 if name.startswith("basic") else 0
        if form in text or form[start : start + 8] in text:
            found.append(name)
    return found + (["token"] if TOKEN in text else [])


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HostileServer:
    """See the module docstring. ``manifest``, ``files`` and ``next_url`` are set by tests."""

    def __init__(self) -> None:
        self.manifest: dict[str, Any] | None = None
        self.files: dict[str, bytes] = {}
        self.next_url: str | None = None
        self.redirects: dict[str, str] = {}  # file name -> Location of a 307
        self.issue_token = False
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hostile": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + "/fhir"

    def file_url(self, name: str) -> str:
        return f"{self.origin}/files/{name}"

    def output_manifest(self, outputs: list[tuple[str, str]]) -> dict[str, Any]:
        """A manifest listing ``(type, file URL)`` as output."""
        return {
            "transactionTime": "2026-11-25T10:00:00.000Z",
            "request": self.url + "/$export",
            "requiresAccessToken": True,
            "output": [{"type": t, "url": u} for t, u in outputs],
            "error": [],
        }

    def __enter__(self) -> HostileServer:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.seen.append(seen)
        path = seen.path.split("?", 1)[0]
        if path == "/token":
            return self._echo_token(seen)
        if path == "/fhir/metadata":  # a FHIR server, so the CLI's probe lets it through
            return _json(200, {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
        if path == "/fhir/.well-known/smart-configuration":
            return _json(200, {"token_endpoint": self.origin + "/token"})
        if path.endswith("$export"):
            return 202, {"Content-Location": self.url + "/status"}, b""
        if path == "/fhir/status":
            if seen.method == "DELETE" or self.manifest is None:
                return 202, {"Retry-After": "1"}, b""
            return _json(200, self.manifest)
        if path.removeprefix("/files/") in self.redirects:
            return 307, {"Location": self.redirects[path.removeprefix("/files/")]}, b""
        if path.startswith("/files/"):
            body = self.files.get(path.removeprefix("/files/"))
            return (
                (200, {"Content-Type": "application/fhir+ndjson"}, body) if body else (404, {}, b"")
            )
        resource_type = path.removeprefix("/fhir/")
        link = [{"relation": "next", "url": self.next_url}] if self.next_url else []
        entry = [{"resource": {"resourceType": resource_type, "id": "h1"}}]
        return _json(
            200, {"resourceType": "Bundle", "type": "searchset", "link": link, "entry": entry}
        )

    def _echo_token(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if self.issue_token:
            return _json(200, {"access_token": TOKEN, "expires_in": 300, "scope": "system/*.read"})
        echoed = (
            f"Authorization: {seen.headers.get('Authorization', '')}; body: {seen.body.decode()}"
        )
        decoded = unquote_plus(seen.body.decode())  # a gateway that logs the decoded form
        header = seen.headers.get("Authorization", "")
        if header.startswith("Basic "):  # ...and the decoded Basic credentials
            decoded += " basic: " + base64.b64decode(header.removeprefix("Basic ")).decode()
        body = {
            "error": "invalid_client",
            # padded so that a scrubber that cuts first would cut a secret in half
            "error_description": "x" * 100 + echoed + " decoded: " + decoded,
            "request": {"headers": seen.headers, "body": seen.body.decode()},
        }
        return _json(401, body)


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    hostile: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
        status, headers, payload = self.hostile.answer(seen)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_DELETE = do_GET
