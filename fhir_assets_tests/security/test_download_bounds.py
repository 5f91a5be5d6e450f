"""Issue 23 findings 4 and 5 (downloads): gzip bombs (with and without ``Content-Encoding``),
endless chunked bodies and a file sent a byte at a time stop with an error naming the setting,
and nothing large reaches the disk."""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from fhir_assets.fhir.bulk import BulkClient
from fhir_assets.fhir.bulk.download import fetch
from fhir_assets.fhir.bulk.manifest import ExportError, OutputFile
from fhir_assets.fhir.bulk.options import BulkOptions
from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.limits import Limits
from fhir_assets_tests.security.evil import (
    EvilServer,
    endless_chunked,
    evil_servers,
    gzip_bomb,
    reply,
    trickle,
)

LINE = b'{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2026-01-01T00:00:00Z"}}\n'


def download(
    server: EvilServer, tmp_path: Path, limits: Limits, now: Callable[[], float] | None = None
) -> Path:
    target = tmp_path / "out" / "Patient.ndjson"
    extra = {"now": now} if now else {}
    client = FhirClient(f"{server.url}/fhir", limits=limits, **extra)  # type: ignore[arg-type]
    with client, BulkClient(client, BulkOptions(attempts=1), sleep=lambda s: None) as bulk:
        fetch(bulk, OutputFile("Patient", f"{server.url}/files/Patient.ndjson"), target,
              with_token=False)  # fmt: skip
    return target


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_endless_chunked_body_stops_at_max_file_bytes(tmp_path: Path) -> None:
    with evil_servers(1) as (server,):
        server.route("/files/", lambda seen, h: endless_chunked(h, server.stop, LINE * 800))
        with pytest.raises(ExportError, match="FHIR_MAX_FILE_BYTES"):
            download(server, tmp_path, Limits(max_file_bytes=2_000_000))
    assert disk_bytes(tmp_path) == 0  # nothing half-written is kept


@pytest.mark.parametrize("encoding", ["content-encoding", "gz-file"])
def test_gzip_bomb_stops_at_the_compression_ratio(tmp_path: Path, encoding: str) -> None:
    bomb = gzip_bomb(64 * 1024**2, LINE)  # 64 MB of lines in about 100 kB
    headers = {"Content-Encoding": "gzip"} if encoding == "content-encoding" else {}
    with evil_servers(1) as (server,):
        server.route("/files/", lambda seen, h: reply(h, 200, bomb, headers, "application/ndjson"))
        with pytest.raises(ExportError, match="FHIR_MAX_COMPRESSION_RATIO"):
            download(server, tmp_path, Limits())
    assert disk_bytes(tmp_path) < 4 * 1024**2


@pytest.mark.parametrize("encoding", ["content-encoding", "gz-file"])
def test_gzip_past_max_file_bytes_is_refused(tmp_path: Path, encoding: str) -> None:
    body = gzip.compress(LINE * 40_000)  # 3.4 MB, an ordinary ratio
    headers = {"Content-Encoding": "gzip"} if encoding == "content-encoding" else {}
    with evil_servers(1) as (server,):
        server.route("/files/", lambda seen, h: reply(h, 200, body, headers, "application/ndjson"))
        with pytest.raises(ExportError, match="FHIR_MAX_FILE_BYTES"):
            download(server, tmp_path, Limits(max_file_bytes=1_000_000))


@pytest.mark.parametrize("encoding", ["content-encoding", "gz-file", "plain"])
def test_ordinary_compressed_file_lands_whole(tmp_path: Path, encoding: str) -> None:
    # valid but unusual: 3 MB of near-identical lines (a ratio near 50) still passes
    data = b"".join(LINE.replace(b'"p1"', b'"p%d"' % i) for i in range(40_000))
    assert len(data) / len(gzip.compress(data)) > 30
    body = data if encoding == "plain" else gzip.compress(data)
    headers = {"Content-Encoding": "gzip"} if encoding == "content-encoding" else {}
    with evil_servers(1) as (server,):
        server.route("/files/", lambda seen, h: reply(h, 200, body, headers, "application/ndjson"))
        target = download(server, tmp_path, Limits())
    assert target.read_bytes() == data


def test_trickled_file_stops_at_the_download_deadline(tmp_path: Path) -> None:
    with evil_servers(1) as (server,):
        server.route("/files/", lambda seen, h: trickle(h, server.stop, LINE, 0.2))
        # 3 s: a few bytes even on a loaded machine, far from the whole line (17 s at 0.2 s/byte)
        with pytest.raises(ExportError, match="FHIR_DOWNLOAD_DEADLINE_S"):
            download(server, tmp_path, Limits(download_deadline_s=3.0))
    part = tmp_path / "out" / "Patient.ndjson.part"
    assert 0 < part.stat().st_size < len(LINE)  # kept: a rerun resumes from here


def test_slow_file_stops_below_the_minimum_throughput(tmp_path: Path) -> None:
    clock = itertools.count(0, 30)  # each read "takes 30 s": 1 byte per 30 s
    with evil_servers(1) as (server,):
        server.route("/files/", lambda seen, h: trickle(h, server.stop, LINE, 0.01))
        with pytest.raises(ExportError, match="FHIR_MIN_DOWNLOAD_BYTES_PER_S"):
            download(server, tmp_path, Limits(), now=lambda: next(clock))
