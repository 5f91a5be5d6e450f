"""The fault-injecting proxy: forwarding, origin rewriting and every fault kind, real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import requests

from fhir_assets.fhir import BearerAuth, ClientCredentialsTokenSource, FhirClient, load_private_key
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.proxy import Fault, FaultProxy, rewrite

BIG = 200_000  # larger than the proxy's read size, so the body streams in several chunks


def get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=10, **kwargs)


def post(url: str, **kwargs: Any) -> requests.Response:
    return requests.post(url, timeout=10, **kwargs)


class Upstream(BaseHTTPRequestHandler):
    """A tiny server whose bodies and headers name its own origin, and echo what it received."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        body = orjson.dumps(
            {
                "resourceType": "Bundle",
                "link": [{"relation": "next", "url": f"{origin}/fhir/Patient?page=2"}],
                "authorization": self.headers.get("Authorization"),
                "path": self.path,
                "padding": "x" * BIG + origin,
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Location", f"{origin}/fhir/$export-poll/1")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/fhir/X/1")
        self.end_headers()
        self.wfile.write(body[::-1])  # reversed, so the proxy's rewriting cannot touch it


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream, seed=3) as running:
        yield running


def test_proxy_forwards_and_rewrites_origin_in_body_and_headers(
    proxy: FaultProxy, upstream: str
) -> None:
    response = get(f"{proxy.url}/Patient?x=1", headers={"Authorization": "Bearer t0k"})
    body = response.json()
    assert proxy.url.startswith("http://127.0.0.1:") and proxy.url.endswith("/fhir")
    assert body["link"][0]["url"] == f"{proxy.url}/Patient?page=2"
    assert body["padding"].endswith(proxy.origin)
    assert upstream.removesuffix("/fhir") not in response.text
    assert response.headers["Content-Location"] == f"{proxy.url}/$export-poll/1"
    assert body["authorization"] == "Bearer t0k"
    assert body["path"] == "/fhir/Patient?x=1"
    assert proxy.requests == [("GET", "/fhir/Patient", 200)]
    assert proxy.forwarded == 1


def test_proxy_forwards_request_bodies_with_the_upstream_origin(
    proxy: FaultProxy, upstream: str
) -> None:
    sent = f'{{"fullUrl": "{proxy.url}/Patient/1"}}'
    response = post(f"{proxy.url}/", data=sent)
    assert response.status_code == 201
    assert response.text[::-1] == f'{{"fullUrl": "{upstream}/Patient/1"}}'
    assert response.headers["Location"] == f"{proxy.url}/X/1"


@pytest.mark.parametrize(
    "retry_after",
    [7, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)],
    ids=["seconds", "http-date"],
)
def test_proxy_status_fault_sends_retry_after_and_an_operation_outcome(
    proxy: FaultProxy, retry_after: int | datetime
) -> None:
    proxy.add(Fault("status", status=429, retry_after=retry_after, count=1))
    first = get(f"{proxy.url}/Patient")
    second = get(f"{proxy.url}/Patient")
    assert first.status_code == 429
    assert first.json()["resourceType"] == "OperationOutcome"
    header = first.headers["Retry-After"]
    if isinstance(retry_after, datetime):
        assert parsedate_to_datetime(header) == retry_after
    else:
        assert header == "7"
    assert second.status_code == 200
    assert proxy.requests == [("GET", "/fhir/Patient", 429), ("GET", "/fhir/Patient", 200)]
    assert proxy.forwarded == 1
    assert proxy.injected == {"status": 1}


def test_proxy_drop_closes_the_connection_without_a_response(proxy: FaultProxy) -> None:
    proxy.add(Fault("drop", count=1))
    with pytest.raises(requests.ConnectionError):
        get(f"{proxy.url}/Patient")
    assert get(f"{proxy.url}/Patient").status_code == 200
    assert proxy.statuses() == {None: 1, 200: 1}


def test_proxy_truncate_cuts_the_body_halfway(proxy: FaultProxy) -> None:
    proxy.add(Fault("truncate", count=1))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(f"{proxy.url}/Patient")
    assert proxy.injected == {"truncate": 1}
    assert proxy.forwarded == 1


def test_proxy_slow_delays_the_answer(proxy: FaultProxy) -> None:
    slow = proxy.add(Fault("slow", delay_s=0.3, path_contains="/Patient"))
    started = time.monotonic()
    assert get(f"{proxy.url}/Patient").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert get(f"{proxy.url}/Observation").status_code == 200
    assert (slow.matched, slow.fired) == (1, 1)
    assert proxy.injected == {"slow": 1}


def test_proxy_html_fault_sends_an_html_page(proxy: FaultProxy) -> None:
    proxy.add(Fault("html", status=502, method="GET"))
    response = get(f"{proxy.url}/Patient")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<html>")
    assert post(f"{proxy.url}/", data=b"{}").status_code == 201


def test_proxy_every_and_count_select_requests(proxy: FaultProxy) -> None:
    proxy.add(Fault("status", status=503, every=3, count=2))
    statuses = [get(f"{proxy.url}/Patient").status_code for _ in range(9)]
    assert statuses == [200, 200, 503, 200, 200, 503, 200, 200, 200]


def test_proxy_rate_is_reproducible_for_a_seed(upstream: str) -> None:
    def run() -> list[int]:
        with FaultProxy(upstream, seed=11) as proxy:
            proxy.add(Fault("status", status=500, rate=0.3))
            with requests.Session() as session:
                return [session.get(f"{proxy.url}/Patient").status_code for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert 4 <= first.count(500) <= 20


def test_proxy_clear_stops_faults(proxy: FaultProxy) -> None:
    proxy.add(Fault("status", status=500))
    assert get(f"{proxy.url}/Patient").status_code == 500
    proxy.clear()
    assert get(f"{proxy.url}/Patient").status_code == 200


def test_fault_rejects_unknown_kinds_and_status_without_code() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ValueError, match="status="):
        Fault("status")


@pytest.mark.parametrize("size", [1, 2, 5, 21, 22, 1000])
def test_rewrite_replaces_origins_across_chunk_boundaries(size: int) -> None:
    old, new = b"http://127.0.0.1:5000", b"http://127.0.0.1:61234"
    text = b"a" + old + b'"' + old + old + b"/fhir" + b"z" * 30 + old
    chunks = iter([text[i : i + size] for i in range(0, len(text), size)])
    assert b"".join(rewrite(chunks, old, new)) == text.replace(old, new)


def test_proxy_carries_authenticated_paging_against_the_sandbox(sandbox: Sandbox) -> None:
    with FaultProxy(sandbox.base_url) as proxy:
        tokens = ClientCredentialsTokenSource(
            token_url=sandbox.token_url,
            client_id=sandbox.client.client_id,
            private_key=load_private_key(sandbox.client.private_key_path),
            scope="system/*.read",
        )
        with FhirClient(proxy.url, auth=BearerAuth(tokens, proxy.url)) as client:
            pages = list(client.search_pages("Patient", {"_count": 10}))
    expected = sandbox.counts(["Patient"])["Patient"]
    assert sum(len(page.resources) for page in pages) == expected
    assert len(pages) > 1
    assert [status for _, _, status in proxy.requests] == [200] * len(pages)
