"""JSON answers (search pages, export status, token endpoint) are read within bounds: a gzip
bomb, an endless chunked body or a trickle stops with an error naming the setting, before the
body is held in memory; an ordinary compressed page still lands."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import orjson
import pytest

from fhir_assets.fhir.bulk import BulkClient
from fhir_assets.fhir.bulk.manifest import ExportJob
from fhir_assets.fhir.bulk.options import BulkOptions
from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.errors import FhirError
from fhir_assets.fhir.http import new_session
from fhir_assets.fhir.limits import LimitError, Limits
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets.fhir.tokens import TokenRequestError, request_token
from fhir_assets_tests.security.evil import EvilServer, evil_servers, gzip_bomb, reply, trickle

NO_RETRY = RetryPolicy(attempts=0)
ENTRY = {"resource": {"resourceType": "Patient", "id": "p1"}}
BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": [ENTRY] * 3}


def send(h: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str]) -> None:
    reply(h, 200, body, headers, content_type="application/fhir+json")


def padded_bundle(size: int) -> bytes:
    """A valid searchset of about ``size`` bytes (one resource with a long text)."""
    pad = {"resourceType": "Patient", "id": "big", "text": {"div": "x" * size}}
    return orjson.dumps(BUNDLE | {"entry": [{"resource": pad}]})


def chunked_forever(h: BaseHTTPRequestHandler, server: EvilServer) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/fhir+json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    head = b'{"resourceType":"Bundle",'
    h.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
    sent = 0
    while not server.stop.is_set() and sent < 64 * 1024**2:  # stops by itself on today's main
        h.wfile.write(b"10000\r\n" + b" " * 0x10000 + b"\r\n")
        sent += 0x10000


@pytest.fixture
def server() -> Iterator[EvilServer]:
    with evil_servers(1) as (one,):
        yield one


def search(server: EvilServer, limits: Limits) -> list[dict]:
    with FhirClient(f"{server.url}/fhir", retry=NO_RETRY, limits=limits) as client:
        return list(client.search("Patient"))


def test_a_gzip_bomb_search_page_stops_at_the_compression_ratio(server: EvilServer) -> None:
    bomb = gzip.compress(padded_bundle(64 * 1024**2), compresslevel=9)
    server.route("/fhir/Patient", lambda seen, h: send(h, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(LimitError, match="FHIR_MAX_COMPRESSION_RATIO"):
        search(server, Limits())


def test_a_search_page_past_the_response_bound_stops(server: EvilServer) -> None:
    big = padded_bundle(3 * 1024**2)
    server.route("/fhir/Patient", lambda seen, h: send(h, big, {}))
    with pytest.raises(LimitError, match="FHIR_MAX_RESPONSE_BYTES"):
        search(server, Limits(max_response_bytes=1024**2))


def test_an_endless_chunked_search_page_stops(server: EvilServer) -> None:
    server.route("/fhir/Patient", lambda seen, h: chunked_forever(h, server))
    with pytest.raises(LimitError, match="FHIR_MAX_RESPONSE_BYTES"):
        search(server, Limits(max_response_bytes=2 * 1024**2))


def test_a_trickled_search_page_stops_at_the_deadline(server: EvilServer) -> None:
    body = orjson.dumps(BUNDLE)
    server.route("/fhir/Patient", lambda seen, h: trickle(h, server.stop, body, 0.05))
    started = time.monotonic()
    with pytest.raises(LimitError, match="FHIR_DOWNLOAD_DEADLINE_S"):
        search(server, Limits(download_deadline_s=1.0))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_an_ordinary_compressed_page_lands(server: EvilServer, encoding: str) -> None:
    # a real server's compressed page: 4 MB of ordinary JSON, past the ratio grace (valid input)
    body = padded_bundle(4 * 1024**2)
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    server.route("/fhir/Patient", lambda seen, h: send(h, packed, {"Content-Encoding": encoding}))
    found = search(server, Limits(max_compression_ratio=100_000))
    assert [r["id"] for r in found] == ["big"]


def test_a_gzip_bomb_export_status_stops(server: EvilServer) -> None:
    bomb = gzip_bomb(64 * 1024**2, b'{"output": []}    ')
    server.route("/fhir/status", lambda seen, h: send(h, bomb, {"Content-Encoding": "gzip"}))
    client = FhirClient(f"{server.url}/fhir", retry=NO_RETRY)
    with client, BulkClient(client, BulkOptions(attempts=0), sleep=lambda s: None) as bulk:
        with pytest.raises(FhirError, match="FHIR_MAX_COMPRESSION_RATIO"):
            bulk.poll(ExportJob(f"{server.url}/fhir/status", time.time()))


def test_a_gzip_bomb_token_answer_stops(server: EvilServer) -> None:
    bomb = gzip_bomb(64 * 1024**2, b"          ")
    server.route("/token", lambda seen, h: send(h, bomb, {"Content-Encoding": "gzip"}))
    with new_session() as http, pytest.raises((TokenRequestError, LimitError), match="RATIO"):
        request_token(http, f"{server.url}/token", {"grant_type": "client_credentials"},
                      now=time.time, timeout=10)  # fmt: skip


@pytest.mark.parametrize("big", ["token answer", "smart configuration"])
def test_the_operators_response_bound_holds_for_token_answers_and_discovery(
    server: EvilServer, big: str
) -> None:
    """FHIR_MAX_RESPONSE_BYTES (``Limits``) bounds the token endpoint's answer and the SMART
    configuration too, not only the FHIR answers: both come from the client's settings."""
    from fhir_assets.fhir.settings import ServerSettings, build_token_source

    pad = "x" * (20_000 if big == "smart configuration" else 0)
    config = {"token_endpoint": f"{server.url}/token", "capabilities": [], "pad": pad}
    token = {"access_token": "t" * (20_000 if big == "token answer" else 8), "expires_in": 300}
    server.route("/fhir/.well-known/smart-configuration", lambda seen, h: reply(h, 200, config))
    server.route("/token", lambda seen, h: reply(h, 200, token))
    settings = ServerSettings(
        f"{server.url}/fhir", client_id="c", client_secret="s", scopes=None,
        limits=Limits(max_response_bytes=4096),
    )  # fmt: skip
    with pytest.raises((TokenRequestError, LimitError), match="FHIR_MAX_RESPONSE_BYTES"):
        source = build_token_source(settings)
        assert source is not None
        source.token()
