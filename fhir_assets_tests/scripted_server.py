"""A tiny real HTTP server on 127.0.0.1 that answers from a script, for behaviour no real FHIR
server can be made to show on demand (repeating next links, HTML error pages, ...)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes | dict | list = b""  # type: ignore[type-arg]
    content_type: str = "application/fhir+json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str  # with query string
    headers: dict[str, str]


Script = Callable[[str, str], Reply]  # (method, path with query) -> reply


@contextmanager
def scripted_server(script: Script) -> Iterator[tuple[str, list[Seen]]]:
    """Serve ``script`` on 127.0.0.1:free port; yields (base URL, requests seen)."""
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append(Seen(self.command, self.path, dict(self.headers.items())))
            reply = script(self.command, self.path)
            body = reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
