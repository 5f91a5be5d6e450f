"""A small real HTTP server on 127.0.0.1 for behaviour the sekmet sandbox lacks: its routes are
plain functions, and it records every request it receives (method, path, headers), so tests can
prove what reached which origin.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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
