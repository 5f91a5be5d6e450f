"""The one place the library opens HTTP sessions, and how every session follows redirects.

``requests`` follows redirects by itself (GET, and POST on 307/308 with its body), so a check
made on the first URL says nothing about the next one: a token endpoint answering ``307`` to
``http://elsewhere/`` would receive the client secret or the signed assertion in clear. Every
session here sends with ``allow_redirects=False`` and follows hops itself, re-checking each one
before it is sent:

* the https rule (:func:`~fhir_assets.fhir.urls.require_https`) on every hop;
* the origin rule: by default (``"same-origin"``) a redirect may not leave the first URL's
  origin (searches, writes, token requests, export kick-off and status: another origin's answer
  would be landed as this server's, or would receive its credentials). ``"reads"`` (a single
  read such as ``Binary/x``: Oracle Health answers with 307 to storage on another host) follows
  a hop to another origin without credentials; ``"files"`` (Bulk Data output files, served from
  pre-signed storage URLs) sends no credentials after the first hop at all (Bulk Data IG v2).

A refused hop raises :class:`RedirectError` naming both URLs (without query strings).

A body is read here too, unless the caller streams it (``stream=True``: Bulk Data files, bounded
by ``download.py``): as it arrives, decompressed, within :class:`~fhir_assets.fhir.limits.Limits`
(``max_response_bytes``, the compression ratio, the download deadline and throughput floor).
``requests`` would otherwise hold any body whole in memory, however large a gzip bomb or an
endless chunked answer makes it, and a body trickled a byte at a time would never end.
"""

from __future__ import annotations

import http.client
import time
from typing import Any, Literal
from urllib.parse import urljoin

import requests
import urllib3

from .limits import BodyMeter, LimitError, Limits
from .urls import InsecureUrlError, origin, redact, require_https, show_origin

__all__ = ["MAX_REDIRECTS", "GuardedSession", "RedirectError", "new_session", "read_body"]

MAX_REDIRECTS = 5
# Decompressed bytes per read (urllib3 2.6+ inflates no more than asked): a gzip bomb is counted
# as it inflates, never held whole.
BODY_CHUNK = 1 << 16
Redirects = Literal["same-origin", "reads", "files"]
BODY_ARGS = ("data", "json", "files")


class RedirectError(InsecureUrlError):
    """A redirect was refused: it left the server's origin, broke the https rule, or looped."""


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth hook that sends no credentials (redirect targets of files)."""
    request.headers.pop("Authorization", None)
    return request


class GuardedSession(requests.Session):
    """A ``requests`` session that follows redirects itself, checking every hop (module doc).

    Args:
        limits: ``max_redirects`` hops are followed before :class:`RedirectError`
            (``FHIR_MAX_REDIRECTS``); bodies are read within its bounds (module doc).
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        self.limits = limits or Limits()
        self.max_redirects = self.limits.max_redirects

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, redirects: Redirects = "same-origin", **kwargs: Any
    ) -> requests.Response:
        """Send ``method url``; follow up to ``max_redirects`` checked hops (module doc).

        Raises:
            RedirectError: a hop broke the https or the origin rule, or there were too many.
            InsecureUrlError: the first URL breaks the https rule.
            LimitError: the body broke a bound of :class:`Limits` (module doc).
            requests.exceptions.ChunkedEncodingError: the body broke off.
            requests.exceptions.ContentDecodingError: the body could not be decompressed.
        """
        kwargs["allow_redirects"] = False
        streamed = kwargs.get("stream", False)
        kwargs["stream"] = True  # bodies are read below, bounded (module doc)
        first = require_https(url, f"{method} target")
        for _hop in range(self.max_redirects + 1):
            response = super().request(method, url, *args, **kwargs)
            if not response.is_redirect:
                if not streamed:
                    read_body(response, self.limits)
                return response
            target = urljoin(url, response.headers["Location"])
            response.close()
            _check_hop(url, target, first, redirects, self.max_redirects)
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method = "GET"  # RFC 9110 15.4: the body is not sent again
                for name in BODY_ARGS:
                    kwargs.pop(name, None)
            kwargs.pop("params", None)  # the Location carries its own query
            if redirects == "files" or origin(target) != origin(first):
                kwargs["auth"] = _no_credentials  # never a credential to another origin
                headers = {**(kwargs.get("headers") or {})}
                headers.pop("Authorization", None)
                kwargs["headers"] = headers
            url = target
        raise RedirectError(
            f"{method} {redact(first)} redirected more than {self.max_redirects} times "
            f"(last to {redact(url)}); raise FHIR_MAX_REDIRECTS if this is expected"
        )


def _check_hop(source: str, target: str, first: str, redirects: Redirects, limit: int) -> None:
    """Raise :class:`RedirectError` unless the hop ``source -> target`` may be followed."""
    try:
        require_https(target, f"redirect target of {redact(source)}")
    except InsecureUrlError as exc:
        raise RedirectError(
            f"{redact(source)} redirected to {redact(target)}, which breaks the https rule: "
            f"refusing to follow it ({exc})"
        ) from None
    if redirects == "same-origin" and origin(target) != origin(first):
        raise RedirectError(
            f"{redact(source)} redirected to {redact(target)}, another origin "
            f"({show_origin(target)}) than the server's ({show_origin(first)}): credentials and "
            f"answers stay on the server's origin; refusing to follow it"
        )


def read_body(response: requests.Response, limits: Limits) -> None:
    """Read ``response``'s body into ``response.content``, decompressed, within ``limits``.

    ``read1`` returns what has arrived, so the deadline holds against a trickle.

    Raises:
        LimitError: the body broke a bound (the response is closed).
        requests.exceptions.ChunkedEncodingError: the body broke off (shorter than its
            ``Content-Length``, a cut chunked body, a reset connection).
        requests.exceptions.ContentDecodingError: the body could not be decompressed.
    """
    what = f"{response.request.method} {redact(response.url or '')}"
    meter = BodyMeter(what, limits, time.monotonic())
    raw, body = response.raw, bytearray()  # grown in place: one copy of the body, not two
    try:
        while chunk := raw.read1(BODY_CHUNK, decode_content=True):
            meter.add(len(chunk), raw.tell(), time.monotonic())
            body += chunk
    except LimitError:
        response.close()
        raise
    except urllib3.exceptions.DecodeError as exc:
        response.close()
        raise requests.exceptions.ContentDecodingError(f"{what}: {exc}") from exc
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        response.close()
        raise requests.exceptions.ChunkedEncodingError(f"{what}: {type(exc).__name__}") from exc
    # a bytearray: read as bytes by orjson and requests, without a second copy of the body
    response._content = body  # type: ignore[assignment]
    response._content_consumed = True  # type: ignore[attr-defined]


def new_session(limits: Limits | None = None) -> GuardedSession:
    """A new :class:`GuardedSession`: the only way the library makes a ``requests`` session."""
    return GuardedSession(limits)
