"""A scripted FHIR search server on 127.0.0.1 for behaviour the sandbox cannot show.

It serves ``GET /fhir/Patient`` as offset-paged searchsets over a fixed list of patients and can
misbehave on purpose: repeat a ``next`` link, or answer 410 Gone (an expired paging cursor).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


@dataclass
class Script:
    """What the fake server does.

    ``gone_pages``: how many deep-page requests answer 410; ``refuse_count``: answer 400 to
    ``_summary=count``.
    """

    patients: int = 25
    page_size: int = 10
    repeat_next: bool = False
    gone_pages: int = 0
    refuse_count: bool = False
    headers: list[dict[str, str]] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)


def patient(index: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{index:03d}",
        "meta": {"versionId": "1", "lastUpdated": "2026-03-01T10:00:00.000Z"},
    }


def make_handler(script: Script) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with lock:
                script.headers.append(dict(self.headers.items()))
                script.queries.append(query)
            if script.refuse_count and "_summary" in query:
                return self.reply(
                    400,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {
                                "severity": "error",
                                "code": "not-supported",
                                "diagnostics": "_summary",
                            }
                        ],
                    },
                )
            offset = int(query.get("_offset", ["0"])[0])
            if offset and script.gone_pages:
                with lock:
                    script.gone_pages -= 1
                return self.reply(
                    410,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {
                                "severity": "error",
                                "code": "not-found",
                                "diagnostics": "cursor expired",
                            }
                        ],
                    },
                )
            origin = f"http://127.0.0.1:{self.server.server_address[1]}"
            next_offset = script.page_size if script.repeat_next else offset + script.page_size
            links = []
            if next_offset < script.patients:
                links.append(
                    {"relation": "next", "url": f"{origin}/fhir/Patient?_offset={next_offset}"}
                )
            entries = [
                {"resource": patient(i), "search": {"mode": "match"}}
                for i in range(offset, min(offset + script.page_size, script.patients))
            ]
            self.reply(
                200,
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": script.patients,
                    "link": links,
                    "entry": entries,
                },
            )

        def reply(self, status: int, body: dict[str, Any]) -> None:
            payload = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def fake_fhir(script: Script) -> Iterator[str]:
    """Serve ``script`` on a free port; yields the base URL (``http://127.0.0.1:PORT/fhir``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
