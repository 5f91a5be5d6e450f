"""Hostile HTTP servers on 127.0.0.1 for issue 23 (redirects, floods, stalls), and names that
resolve to them inside the test process (``evil.test``: a second origin, not loopback by name).

Each route is a function ``(request, handler) -> None`` that writes the answer itself, so a test
can redirect, stream forever, trickle one byte at a time or send gzip bombs.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() when it arrived


Route = Callable[[Seen, BaseHTTPRequestHandler], None]


class EvilServer:
    """Routes by longest path prefix; records every request (with its body) in ``seen``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        handler = type("Handler", (_Handler,), {"evil": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> EvilServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()

    def route(self, prefix: str, fn: Route) -> None:
        self.routes[prefix] = fn


class _Handler(BaseHTTPRequestHandler):
    evil: EvilServer
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.command, self.path, dict(self.headers.items()), body, time.monotonic())
        self.evil.seen.append(seen)
        path = self.path.split("?")[0]
        for prefix in sorted(self.evil.routes, key=len, reverse=True):
            if path.startswith(prefix):
                try:
                    self.evil.routes[prefix](seen, self)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
        reply(self, 404, {"resourceType": "OperationOutcome"})

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


def reply(
    h: BaseHTTPRequestHandler,
    status: int,
    body: Any = b"",
    headers: dict[str, str] | None = None,
    content_type: str = "application/fhir+json",
) -> None:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)


def redirect(status: int, location: str) -> Route:
    return lambda seen, h: reply(h, status, b"", {"Location": location})


def json_route(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Route:
    return lambda seen, h: reply(h, status, body, headers)


def endless_chunked(h: BaseHTTPRequestHandler, stop: threading.Event, chunk: bytes) -> None:
    """A chunked body that never ends (until the test stops the server or the client leaves)."""
    h.send_response(200)
    h.send_header("Content-Type", "application/fhir+ndjson")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    while not stop.is_set():
        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def trickle(h: BaseHTTPRequestHandler, stop: threading.Event, body: bytes, every_s: float) -> None:
    """``body`` one byte every ``every_s`` seconds (under any read timeout)."""
    h.send_response(200)
    h.send_header("Content-Type", "application/fhir+ndjson")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    for i in range(len(body)):
        if stop.wait(every_s):
            return
        h.wfile.write(body[i : i + 1])
        h.wfile.flush()


def gzip_bomb(size: int, line: bytes) -> bytes:
    """gzip data that inflates to about ``size`` bytes of repeated ``line``."""
    repeats = max(1, size // len(line))
    return gzip.compress(line * repeats, compresslevel=9)


@contextmanager
def evil_servers(count: int = 2) -> Iterator[list[EvilServer]]:
    """``count`` servers: the first on ``127.0.0.1``, the others named ``evil.test``."""
    servers = [EvilServer("127.0.0.1" if i == 0 else "evil.test").start() for i in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def evil_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``*.test`` names resolve to 127.0.0.1 in this process (a second, non-loopback-named
    origin for the https and origin rules)."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False
