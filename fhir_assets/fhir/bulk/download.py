"""Download manifest files to disk: streamed, parallel (bounded), resumable, checked.

Each file streams into ``NAME.part`` in ``chunk_bytes`` writes; a failed or interrupted transfer
resumes with ``Range`` when the server answers 206, and starts the file over otherwise. A finished
file is renamed into place, counted against the manifest's ``count`` and scanned for bad lines.
The token goes only with ``requiresAccessToken`` and only to the FHIR server's origin; redirects
are followed by hand, without the ``Authorization`` header.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import logging
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import requests
import urllib3

from .. import ndjson
from ..client import decode, redact
from ..errors import RequestError, TransientRequestError
from ..http import read_body
from ..limits import ByteMeter, LimitError, Limits
from ..retry import TRANSIENT_STATUSES, BusyError
from ..urls import origin, show_origin
from .export import BulkClient
from .manifest import ExportError, ExportGoneError, OutputFile
from .state import ExportState, FileDone, inside, local_name

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1 << 20
NDJSON_ACCEPT = "application/fhir+ndjson, application/ndjson;q=0.9, */*;q=0.1"


def _without_token(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth hook that sends nothing (files that don't require the token, redirect targets)."""
    request.headers.pop("Authorization", None)
    return request


def fetch(bulk: BulkClient, file: OutputFile, target: Path, *, with_token: bool) -> int:
    """Stream ``file`` to ``target``, retrying and resuming; returns its size in bytes.

    Raises:
        ExportError: the file failed after every attempt, or the server refused it (4xx).
    """
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    attempts = bulk.options.attempts

    def attempt() -> int:
        _transfer(bulk, file.url, part, with_token=with_token)
        _finish(bulk, part, target)
        return target.stat().st_size

    def resuming(exc: BaseException, wait: float) -> None:
        log.warning("%s; resuming from byte %d in %.0fs", exc, _size(part), wait)

    try:
        return bulk.client.retry.run(
            attempt, attempts=attempts, sleep=bulk.sleep, max_wait_s=bulk.options.max_wait_s,
            stop=bulk.stopping.is_set, before_sleep=resuming,
        )  # fmt: skip
    except TransientRequestError as exc:
        if bulk.stopping.is_set():  # interrupted (abort shut the socket): no retry
            raise ExportError(f"download of {redact(file.url)} interrupted") from exc
        raise ExportError(
            f"download of {redact(file.url)} failed {attempts + 1} times: {exc}"
        ) from exc
    except LimitError as exc:
        if not exc.resumable:
            part.unlink(missing_ok=True)
        raise ExportError(f"download of {file.type} file refused: {exc}") from exc
    except RequestError as exc:
        error = ExportGoneError if exc.status in (404, 410) else ExportError
        raise error(
            f"download of {file.type} file {redact(file.url)} refused: {exc}"
            f"{_elsewhere(bulk, file) if exc.status in (401, 403) and with_token else ''}",
            issues=exc.issues,
        ) from exc


def _elsewhere(bulk: BulkClient, file: OutputFile) -> str:
    """Why a file that wants the token did not get it: it is on another origin (``""`` if not).
    The manifest's ``requiresAccessToken`` cannot send the token off the server's origin."""
    if origin(file.url) == origin(bulk.client.base_url):
        return ""
    return (
        f" -- the manifest says requiresAccessToken, but the file is on {show_origin(file.url)}, "
        f"not the FHIR server's origin {show_origin(bulk.client.base_url)}: the access token is "
        f"sent only to the server's origin, so files elsewhere must be readable without it "
        f"(pre-signed URLs). Ask the server's operator to serve them so."
    )


def _finish(bulk: BulkClient, part: Path, target: Path) -> None:
    """Move a complete download into place, gunzipping a file that was served as gzip data
    (``.ndjson.gz`` without ``Content-Encoding``), streamed in chunks and held to the same
    size and ratio bounds as the download.

    Raises:
        TransientRequestError: the gzip data is truncated or corrupt; the part is deleted, so
            the next attempt downloads the file anew (nothing half-unpacked is left).
        LimitError: it unpacks past ``FHIR_MAX_FILE_BYTES`` or ``FHIR_MAX_COMPRESSION_RATIO``.
    """
    with part.open("rb") as head:
        zipped = head.read(2) == GZIP_MAGIC
    if not zipped:
        part.replace(target)
        return
    unpacked = target.with_name(target.name + ".gunzip")
    meter = ByteMeter(f"{target.name} (gzip)", bulk.client.limits, bulk.client.now())
    packed = part.stat().st_size
    try:
        with gzip.open(part, "rb") as source, unpacked.open("wb") as out:
            while chunk := source.read(CHUNK_BYTES):
                meter.add(len(chunk), packed, meter.started)  # the deadline was the download's
                out.write(chunk)
    except (EOFError, OSError, zlib.error) as exc:  # truncated / not gzip after all / corrupt
        unpacked.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        raise TransientRequestError(
            f"{target.name}: the downloaded gzip data is broken ({type(exc).__name__}: {exc})"
        ) from exc
    except LimitError:
        unpacked.unlink(missing_ok=True)
        raise
    unpacked.replace(target)
    part.unlink()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _transfer(bulk: BulkClient, url: str, part: Path, *, with_token: bool) -> None:
    offset = _size(part)
    headers = {"Accept": NDJSON_ACCEPT}
    if offset:
        # Byte ranges count encoded bytes: ask for the identity encoding so they match the file.
        headers |= {"Range": f"bytes={offset}-", "Accept-Encoding": "identity"}
    response = _open(bulk, url, headers, with_token=with_token)
    bulk.streaming(response)
    with response, contextlib.ExitStack() as forget:
        forget.callback(bulk.streaming, response, done=True)
        status = response.status_code
        if status == 416 and offset:
            part.unlink()  # the partial file no longer matches the server's: start over
            raise TransientRequestError(f"{redact(url)} refused the resume range", url=redact(url))
        if status in TRANSIENT_STATUSES:
            wait = bulk.wait_for(response)
            raise BusyError(f"{redact(url)} answered HTTP {status}", url=redact(url), wait_s=wait)
        if status >= 300:  # the streamed refusal's body is read bounded, as any JSON answer
            _refused(response, bulk.client.limits, url)
        resumed = status == 206 and response.headers.get("Content-Range", "").startswith(
            f"bytes {offset}-"
        )
        meter = ByteMeter(redact(url), bulk.client.limits, bulk.client.now(),
                          offset if resumed else 0)  # fmt: skip
        with part.open("ab" if resumed else "wb") as out:
            _stream(bulk, response, out, meter)


def _refused(response: requests.Response, limits: Limits, url: str) -> None:
    """Raise the :class:`RequestError` of a refused download (with its OperationOutcome)."""
    try:
        read_body(response, limits)
    except (LimitError, requests.RequestException) as exc:
        raise RequestError(
            f"GET {redact(url)} answered HTTP {response.status_code} ({exc})",
            status=response.status_code,
            url=redact(url),
        ) from exc
    decode(response)


def _stream(bulk: BulkClient, response: requests.Response, out: BinaryIO, meter: ByteMeter) -> None:
    """Copy the body to ``out`` as it arrives (``read1``: a trickle is seen byte by byte, so the
    deadline holds), decompressing ``Content-Encoding`` within ``chunk_bytes`` per read, every
    read counted against the bounds of ``meter``."""
    raw = response.raw
    try:
        while chunk := raw.read1(bulk.options.chunk_bytes, decode_content=True):
            meter.add(len(chunk), raw.tell(), bulk.client.now())
            out.write(chunk)
            if bulk.stopping.is_set():
                raise ExportError(f"{meter.what}: interrupted; the bytes so far are kept")
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise TransientRequestError(
            f"GET {meter.what} broke off: {type(exc).__name__}", url=meter.what
        ) from exc


def _open(
    bulk: BulkClient, url: str, headers: dict[str, str], *, with_token: bool
) -> requests.Response:
    """GET ``url`` as a stream; the session follows redirects, each hop checked by the https
    rule, and sends no token after the first hop (:mod:`fhir_assets.fhir.http`)."""
    try:
        return bulk.session.request(
            "GET",
            url,
            headers=headers,
            auth=None if with_token else _without_token,
            stream=True,
            timeout=bulk.client.timeout,
            redirects="files",
        )
    except requests.RequestException as exc:
        raise TransientRequestError(
            f"GET {redact(url)} failed: {type(exc).__name__}", url=redact(url)
        ) from exc


def check(
    bulk: BulkClient, index: int, file: OutputFile, state: ExportState, with_token: bool
) -> FileDone:
    """Download file ``index`` (unless done) and count and scan it; re-fetch once on a count
    mismatch.

    Raises:
        ExportError: the line count still differs from the manifest's ``count``.
    """
    name = local_name(index, file)
    if name in state.done:
        return state.done[name]
    target = inside(state.folder, name)
    output = file.kind == "output"
    for attempt in range(2):
        size = fetch(bulk, file, target, with_token=with_token)
        lines, bad = _scan(target, file, bulk.options.max_line_bytes)
        # Only output files are held to their counts: error files are diagnostics, and servers
        # put wrong counts on them (the export could never finish otherwise).
        if file.count is None or file.count == lines or not output:
            if file.count is not None and file.count != lines:
                log.warning("%s file %s: %d lines, the manifest says %d (kept)",
                            file.kind, name, lines, file.count)  # fmt: skip
            done = FileDone(
                name, file.type, file.kind, size, lines, tuple((b.line, b.reason) for b in bad)
            )
            state.mark_done(done)
            return done
        log.warning(
            "%s has %d lines, manifest says %d (attempt %d)", name, lines, file.count, attempt + 1
        )
        target.unlink()
    raise ExportError(
        f"{file.type} file {redact(file.url)}: {lines} lines downloaded, "
        f"the manifest says {file.count}"
    )


def _scan(path: Path, file: OutputFile, max_line_bytes: int) -> tuple[int, list[ndjson.BadLine]]:
    """Count a downloaded file's lines and find its bad ones. Output lines are resources of
    the file's type with an id; deletion Bundles and OperationOutcomes need no id (Bulk Data
    IG: neither carries one on real servers), only a resourceType."""
    if file.kind == "output":
        return ndjson.scan(path, file.type, max_line_bytes=max_line_bytes)
    return ndjson.scan(path, None, require_id=False, max_line_bytes=max_line_bytes)


def download_all(
    bulk: BulkClient,
    state: ExportState,
    on_file: Callable[[FileDone], None] | None = None,
) -> list[FileDone]:
    """Download every file of ``state.manifest`` not done yet, ``max_connections`` at a time.

    Raises:
        ExportError: a file failed (after the transfers under way finished; their progress is
            kept, files not yet started are left for the next run).
    """
    manifest = state.manifest
    if manifest is None:
        raise ExportError("no manifest to download")
    with_token = manifest.requires_access_token
    results: list[FileDone] = []
    errors: list[BaseException] = []

    def one(index: int, file: OutputFile) -> None:
        if errors or bulk.stopping.is_set():
            return  # a file failed or we were interrupted: start no new one
        try:
            done = check(bulk, index, file, state, with_token)
        except Exception as exc:  # surfaced below, after the other downloads finished
            errors.append(exc)
            return
        results.append(done)
        if on_file is not None:
            on_file(done)

    pool = ThreadPoolExecutor(bulk.options.max_connections, thread_name_prefix="bulk-get")
    try:
        for future in [pool.submit(one, i, f) for i, f in enumerate(manifest.files)]:
            future.result()
    except BaseException:  # Ctrl-C / SIGTERM: stop the transfers now, keep what is done
        bulk.abort()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    if errors:
        raise errors[0]
    return sorted(results, key=lambda d: d.name)
