"""A scripted Bulk Data server on 127.0.0.1 for behaviour the sandbox cannot show on demand:
Retry-After as an HTTP-date, X-Progress, manifest paging, error and deleted files, redirects to
another origin, gzip, byte ranges, truncated bodies. Files stream from disk, so the benchmark
serves gigabyte exports with it too.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/fhir+json"

    def payload(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else orjson.dumps(self.body)


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


class BulkServer:
    """``kickoff`` and ``status`` are reply sequences (the last one repeats); ``files`` maps a name
    to bytes or a path served at ``/files/NAME``; ``pages`` are JSON bodies at ``/pages/NAME``.

    Knobs: ``ranges`` (answer ``Range`` with 206), ``gzip`` (``Content-Encoding: gzip`` when
    accepted), ``truncate`` (name -> how many times to cut the body halfway), ``redirects``
    (name -> URL for a 307), ``token`` (files require ``Authorization: Bearer TOKEN``),
    ``first_bodies`` (name -> bodies served, one per request, before ``files[name]``: e.g. a
    truncated gzip stream sent whole), ``capability`` (the CapabilityStatement at ``metadata``).
    """

    def __init__(self) -> None:
        self.kickoff: list[Reply] = []
        self.status: list[Reply] = []
        self.files: dict[str, bytes | Path] = {}
        self.pages: dict[str, Any] = {}
        self.ranges = True
        self.gzip = False
        self.truncate: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        self.token: str | None = None
        self.first_bodies: dict[str, list[bytes]] = {}
        self.capability: dict[str, Any] = {"resourceType": "CapabilityStatement", "rest": []}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + "/fhir"

    def file_url(self, name: str) -> str:
        return f"{self.origin}/files/{name}"

    def manifest(self, outputs: list[tuple[str, str, int | None]], **extra: Any) -> dict[str, Any]:
        """A manifest whose ``output`` lists ``(type, file name, count)``."""
        output = [
            {"type": t, "url": self.file_url(n)} | ({"count": c} if c is not None else {})
            for t, n, c in outputs
        ]
        return {
            "transactionTime": "2026-11-25T10:00:00.000Z",
            "request": self.url + "/$export",
            "requiresAccessToken": True,
            "output": output,
            "error": [],
        } | extra

    def next_reply(self, replies: list[Reply], default: Reply) -> Reply:
        with self._lock:
            if not replies:
                return default
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def paths(self, method: str | None = None) -> list[str]:
        return [s.path for s in self.seen if method is None or s.method == method]

    def __enter__(self) -> BulkServer:
        handler = type("Handler", (_Handler,), {"server_": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_: BulkServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.route()

    do_POST = do_DELETE = do_GET

    def route(self) -> None:
        s = self.server_
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with s._lock:
            s.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
        path = self.path.split("?", 1)[0]
        if "$export" in path:
            accepted = Reply(202, headers={"Content-Location": f"{s.url}/status"})
            self.reply(s.next_reply(s.kickoff, accepted))
        elif path == "/fhir/metadata":
            self.reply(Reply(200, s.capability))
        elif path == "/fhir/status" and self.command == "DELETE":
            self.reply(Reply(202))
        elif path == "/fhir/status":
            self.reply(s.next_reply(s.status, Reply(202, headers={"Retry-After": "1"})))
        elif path.startswith("/pages/"):
            self.reply(Reply(200, s.pages[path.removeprefix("/pages/")]))
        elif path.startswith("/files/"):
            self.file(path.removeprefix("/files/"))
        else:
            self.reply(Reply(404, {"resourceType": "OperationOutcome", "issue": []}))

    def reply(self, reply: Reply) -> None:
        payload = reply.payload()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def file(self, name: str) -> None:
        s = self.server_
        if name in s.redirects:
            self.reply(Reply(307, headers={"Location": s.redirects[name]}))
            return
        if s.token and self.headers.get("Authorization") != f"Bearer {s.token}":
            self.reply(Reply(401, {"resourceType": "OperationOutcome", "issue": []}))
            return
        with s._lock:
            first = s.first_bodies.get(name)
            source = first.pop(0) if first else s.files[name]
        size = source.stat().st_size if isinstance(source, Path) else len(source)
        start = 0
        wanted = self.headers.get("Range", "")
        if s.ranges and wanted.startswith("bytes="):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
        zipped = s.gzip and "gzip" in self.headers.get("Accept-Encoding", "") and not start
        with s._lock:
            cut = s.truncate.get(name, 0)
            if cut:
                s.truncate[name] = cut - 1
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/fhir+ndjson")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        if s.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if zipped:
            data = source.read_bytes() if isinstance(source, Path) else source
            body = gzip.compress(data)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)
        else:
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            self.stream(source, start, (size - start) // 2 if cut else size - start)
        if cut:
            self.close_connection = True

    def stream(self, source: bytes | Path, start: int, length: int) -> None:
        if isinstance(source, bytes):
            self.wfile.write(source[start : start + length])
            return
        with source.open("rb") as stream:
            stream.seek(start)
            while length > 0 and (chunk := stream.read(min(CHUNK, length))):
                self.wfile.write(chunk)
                length -= len(chunk)
