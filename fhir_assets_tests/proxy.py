"""A fault-injecting HTTP proxy for tests: real sockets between a client and an upstream server.

``FaultProxy(upstream_url)`` listens on 127.0.0.1 (a free port) and forwards every request to the
upstream, streaming bodies both ways. Faults chosen per request make it answer 429/5xx (with
``Retry-After``), drop the connection, cut a body halfway, answer slowly or send an HTML error
page. The upstream origin is rewritten to the proxy's in response bodies and in ``Location`` /
``Content-Location``, so ``next`` links, bulk status URLs and manifests keep going through it::

    with FaultProxy(sandbox.base_url, seed=1) as proxy:
        proxy.add(Fault("status", status=429, retry_after=1, rate=0.1))
        proxy.add(Fault("drop", every=7))
        client = FhirClient(proxy.url, auth=...)

Selection: a fault applies to a request matching its ``path_contains``/``method`` when all its
selectors agree: ``rate`` (probability, drawn from the proxy's seeded RNG, so a run is
reproducible for a given request order), ``every`` (every Nth matching request) and ``count``
(at most N firings; alone it means "the first N matching requests"). No selector means always.
The first fault that fires wins; ``delay_s`` is waited before any fault acts.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson

KINDS = frozenset({"status", "drop", "truncate", "slow", "html"})
# RFC 9110 7.6.1: connection-specific headers are not forwarded by a proxy.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
    }
)
CHUNK = 64 * 1024


@dataclass
class Fault:
    """One kind of failure and which requests it hits (see the module docstring)."""

    kind: str
    status: int | None = None
    retry_after: int | float | str | datetime | None = None
    rate: float | None = None
    count: int | None = None
    every: int | None = None
    path_contains: str | None = None
    method: str | None = None
    delay_s: float = 0.0
    matched: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")
        if self.kind == "status" and self.status is None:
            raise ValueError('a "status" fault needs status=')

    def fires(self, method: str, path: str, rng: random.Random) -> bool:
        """Whether this fault hits the request (updates its counters; call under the lock)."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path_contains is not None and self.path_contains not in path:
            return False
        self.matched += 1
        if self.count is not None and self.fired >= self.count:
            return False
        if self.every is not None and self.matched % self.every:
            return False
        if self.rate is not None and rng.random() >= self.rate:
            return False
        self.fired += 1
        return True

    def retry_after_header(self) -> str | None:
        """``Retry-After`` as sent: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
        if self.retry_after is None:
            return None
        if isinstance(self.retry_after, datetime):
            return format_datetime(self.retry_after, usegmt=True)
        if isinstance(self.retry_after, float):
            return str(int(self.retry_after))
        return str(self.retry_after)


class FaultProxy:
    """A threaded forwarding proxy on 127.0.0.1 that injects :class:`Fault` s. A context manager.

    Attributes:
        url: the proxy's base URL, with the upstream's path (``http://127.0.0.1:PORT/fhir``).
        requests: ``(method, path without query, status sent)`` per request; status is ``None``
            for a dropped connection.
        injected: how many times each fault kind fired.
        forwarded: how many requests reached the upstream.
    """

    def __init__(self, upstream_url: str, seed: int = 0, timeout: float = 60.0) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the proxy forwards to http:// upstreams only, not {upstream_url!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_origin = f"http://{parts.netloc}"
        self.path = parts.path.rstrip("/")
        self.timeout = timeout
        self.requests: list[tuple[str, str, int | None]] = []
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)  # noqa: S311 (test fault selection, not crypto)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + self.path

    def add(self, fault: Fault) -> Fault:
        """Start injecting ``fault`` (after those already added); returns it for its counters."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Stop injecting faults (the request log and counters stay)."""
        with self._lock:
            self._faults.clear()

    def statuses(self) -> Counter[int | None]:
        """How many responses of each status were sent (``None``: dropped)."""
        with self._lock:
            return Counter(status for _, _, status in self.requests)

    def start(self) -> FaultProxy:
        """Listen on a free port and serve in a background thread."""
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open client connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
            self._sockets.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def choose(self, method: str, path: str) -> Fault | None:
        """The first fault that fires for this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.fires(method, path, self._rng):
                    self.injected[fault.kind] += 1
                    return fault
        return None

    def record(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def track(self, sock: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._sockets.add if open_ else self._sockets.discard)(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def rewrite(chunks: Iterator[bytes], old: bytes, new: bytes) -> Iterator[bytes]:
    """Replace ``old`` with ``new`` in a byte stream, also where ``old`` spans two chunks."""
    keep = len(old) - 1
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = max(0, len(data) - keep)
        straddling = data.find(old, max(0, cut - keep), len(data))
        if 0 <= straddling < cut:
            cut = straddling + len(old)
        yield data[:cut].replace(old, new)
        carry = data[cut:]
    if carry:
        yield carry.replace(old, new)


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, like a real server behind a load balancer

    def setup(self) -> None:
        super().setup()
        self.proxy.track(self.connection, True)

    def finish(self) -> None:
        self.proxy.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``FaultProxy.requests`` instead."""

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def __getattr__(self, name: str) -> Any:
        # One handler for every verb: do_GET, do_POST, do_PUT, do_DELETE, do_PATCH, do_HEAD ...
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def serve(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self.read_body()
        fault = self.proxy.choose(self.command, path)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is None or fault.kind in {"slow", "truncate"}:
            self.forward(body, truncate=fault is not None and fault.kind == "truncate")
        elif fault.kind == "drop":
            self.proxy.record(self.command, path, None)
            self.close_connection = True
            _shut(self.connection)
        else:
            self.answer_fault(fault, path)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # A request body (a transaction's fullUrls) names the proxy; the upstream expects itself.
        return body.replace(self.proxy.origin.encode(), self.proxy.upstream_origin.encode())

    def answer_fault(self, fault: Fault, path: str) -> None:
        status = fault.status or 503
        if fault.kind == "html":
            content_type = "text/html; charset=utf-8"
            payload = f"<html><body><h1>{status} Service Unavailable</h1></body></html>".encode()
        else:
            content_type = "application/fhir+json"
            payload = orjson.dumps(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {"severity": "error", "code": "transient", "diagnostics": "injected fault"}
                    ],
                }
            )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if (retry_after := fault.retry_after_header()) is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        # recorded before the client can see the answer, so a test reading the log never races
        self.proxy.record(self.command, path, status)
        self.wfile.write(payload)

    def forward(self, body: bytes, *, truncate: bool) -> None:
        path = self.path.split("?", 1)[0]
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Accept-Encoding"] = "identity"  # bodies are rewritten, so no compression
        upstream = http.client.HTTPConnection(
            self.proxy.upstream_host, self.proxy.upstream_port, timeout=self.proxy.timeout
        )
        try:
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
            except OSError:
                self.proxy.record(self.command, path, 502)
                self.close_connection = True
                return
            with self.proxy._lock:
                self.proxy.forwarded += 1
            # recorded before the client can see the answer, so a test reading the log never races
            self.proxy.record(self.command, path, response.status)
            try:
                self.relay(response, truncate=truncate)
            except OSError:  # the client hung up mid-answer
                self.close_connection = True
        finally:
            upstream.close()

    def relay(self, response: http.client.HTTPResponse, *, truncate: bool) -> None:
        old, new = self.proxy.upstream_origin, self.proxy.origin
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() in HOP_BY_HOP:
                continue
            if name.lower() in {"location", "content-location"}:
                value = value.replace(old, new)
            self.send_header(name, value)
        chunks = rewrite(iter(lambda: response.read1(CHUNK), b""), old.encode(), new.encode())
        if self.command == "HEAD" or response.status in {204, 304}:
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif truncate:
            # Announce the full length, send half, hang up: the client sees an incomplete body.
            payload = b"".join(chunks)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            _shut(self.connection)
        else:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
