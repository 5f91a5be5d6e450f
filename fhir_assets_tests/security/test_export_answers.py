"""What a Bulk Data server may answer: a file elsewhere that wants the token, manifest pages
without end, file and JSON bodies that break off (a cut chunked body, a Content-Length that
lies). Each stops with a clear error; no token leaves the server's origin; nothing short lands."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from fhir_assets.fhir import BearerAuth, Token, TokenSource
from fhir_assets.fhir.bulk import BulkClient, ExportError, ExportJob, ExportRequest, run_export
from fhir_assets.fhir.bulk.download import fetch
from fhir_assets.fhir.bulk.manifest import OutputFile
from fhir_assets.fhir.bulk.options import BulkOptions
from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.errors import ResponseFormatError, TransientRequestError
from fhir_assets.fhir.limits import Limits
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets_tests.security.evil import EvilServer, evil_servers, json_route, reply

TOKEN = "export-answers-token"
LINE = b'{"resourceType":"Patient","id":"p1"}\n'


class StaticTokens(TokenSource):
    def _fetch(self) -> Token:
        return Token(TOKEN, time.time() + 3600, "system/*.read")


@pytest.fixture
def servers() -> Iterator[tuple[EvilServer, EvilServer]]:
    with evil_servers(1) as (fhir,), evil_servers(1) as (storage,):  # two 127.0.0.1 origins
        yield fhir, storage


def bulk(fhir: EvilServer, limits: Limits | None = None) -> BulkClient:
    base = f"{fhir.url}/fhir"
    client = FhirClient(base, auth=BearerAuth(StaticTokens(), base), limits=limits,
                        retry=RetryPolicy(attempts=0))  # fmt: skip
    return BulkClient(client, BulkOptions(attempts=0), sleep=lambda s: None)


def manifest(url: str, **extra: Any) -> dict[str, Any]:
    output = [{"type": "Patient", "url": url}]
    body = {"transactionTime": "2026-11-25T10:00:00.000Z", "request": "x", "output": output}
    return body | {"requiresAccessToken": True} | extra


def test_a_file_elsewhere_that_wants_the_token_gets_none_and_says_why(
    servers: tuple[EvilServer, EvilServer], tmp_path: Path
) -> None:
    fhir, storage = servers
    status = {"Content-Location": f"{fhir.url}/fhir/st"}
    fhir.route("/fhir/$export", lambda seen, h: reply(h, 202, b"", status))
    fhir.route("/fhir/st", json_route(manifest(f"{storage.url}/f/Patient.ndjson")))
    storage.route("/f/", json_route({"resourceType": "OperationOutcome"}, 401))
    with bulk(fhir) as client, pytest.raises(ExportError) as raised:
        run_export(client, ExportRequest(types=("Patient",)), tmp_path / "x")
    assert "requiresAccessToken, but the file is on http://127.0.0.1:" in str(raised.value)
    assert storage.seen and all("Authorization" not in s.headers for s in storage.seen)
    assert any(s.headers.get("Authorization") == f"Bearer {TOKEN}" for s in fhir.seen)


def test_manifest_pages_without_end_stop_at_the_page_bound(
    servers: tuple[EvilServer, EvilServer],
) -> None:
    fhir, _ = servers
    pages = itertools.count()

    def page(seen: Any, h: BaseHTTPRequestHandler) -> None:
        number = next(pages)
        link = [{"relation": "next", "url": f"{fhir.url}/fhir/st?page={number}"}]
        reply(h, 200, manifest(f"{fhir.url}/f/{number}", link=link if number < 50 else []))

    fhir.route("/fhir/st", page)
    with bulk(fhir, Limits(max_pages=5)) as client:
        with pytest.raises(ResponseFormatError, match=r"more than 5 pages \(FHIR_MAX_PAGES"):
            client.poll(ExportJob(f"{fhir.url}/fhir/st", time.time()))
    assert len(fhir.seen) <= 7


def cut(kind: str) -> Any:
    def route(seen: Any, h: BaseHTTPRequestHandler) -> None:
        body = LINE * 100
        h.send_response(200)
        h.send_header("Content-Type", "application/fhir+ndjson")
        if kind == "content-length":
            h.send_header("Content-Length", str(2 * len(body)))
            h.end_headers()
            h.wfile.write(body)
        else:
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
            if kind == "chunk-cut-inside":
                h.wfile.write(b"%x\r\n%s" % (len(body), body[:50]))
        h.close_connection = True  # the connection ends: no terminating 0-chunk

    return route


@pytest.mark.parametrize("kind", ["content-length", "chunk-cut-inside", "chunk-cut-between"])
def test_a_file_that_breaks_off_is_an_error_and_never_lands_short(
    servers: tuple[EvilServer, EvilServer], tmp_path: Path, kind: str
) -> None:
    fhir, _ = servers
    fhir.route("/f/", cut(kind))
    target = tmp_path / "Patient.ndjson"
    with bulk(fhir) as client, pytest.raises(ExportError, match="broke off"):
        fetch(client, OutputFile("Patient", f"{fhir.url}/f/p"), target, with_token=True)
    assert not target.exists()  # the part stays for a resume, never renamed into place


@pytest.mark.parametrize("kind", ["content-length", "chunk-cut-inside", "chunk-cut-between"])
def test_a_search_page_that_breaks_off_is_a_transient_error(
    servers: tuple[EvilServer, EvilServer], kind: str
) -> None:
    fhir, _ = servers
    fhir.route("/fhir/Patient", cut(kind))
    with FhirClient(f"{fhir.url}/fhir", retry=RetryPolicy(attempts=0)) as client:
        with pytest.raises(TransientRequestError, match="broke off"):
            list(client.search("Patient"))


def test_a_status_that_never_ends_stops_at_the_deadline_with_its_progress_cut(
    servers: tuple[EvilServer, EvilServer],
) -> None:
    fhir, _ = servers
    junk = {"X-Progress": "\u00e9\u00e9 " * 3000, "Retry-After": "1"}
    fhir.route("/fhir/st", lambda seen, h: reply(h, 202, b"", junk))
    base = f"{fhir.url}/fhir"
    options = BulkOptions(attempts=0, total_timeout_s=30, min_poll_s=1)
    clock = [1_800_000_000.0]
    client = BulkClient(FhirClient(base), options, now=lambda: clock[0],
                        sleep=lambda s: clock.__setitem__(0, clock[0] + s))  # fmt: skip
    with client, pytest.raises(ExportError, match="not complete 30s after kick-off") as raised:
        client.wait(ExportJob(f"{base}/st", clock[0]))
    assert len(str(raised.value)) < 400
    assert 2 <= len(fhir.seen) <= 30


def test_an_endless_refusal_of_a_file_is_read_within_the_bound(
    servers: tuple[EvilServer, EvilServer], tmp_path: Path
) -> None:
    fhir, _ = servers

    def refuse(seen: Any, h: BaseHTTPRequestHandler) -> None:
        h.send_response(403)
        h.send_header("Content-Type", "application/fhir+json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(1024):  # 64 MiB, or until the client leaves
            h.wfile.write(b"10000\r\n" + b" " * 0x10000 + b"\r\n")

    fhir.route("/f/", refuse)
    with bulk(fhir, Limits(max_response_bytes=1 << 20)) as client:
        with pytest.raises(ExportError, match=r"HTTP 403 .*FHIR_MAX_RESPONSE_BYTES"):
            fetch(client, OutputFile("Patient", f"{fhir.url}/f/p"), tmp_path / "P.ndjson",
                  with_token=True)  # fmt: skip
