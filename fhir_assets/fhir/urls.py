"""The https rule: where the library may send a token, a secret or patient data.

Every URL the library connects to (FHIR base, token and authorize endpoints, ``jku``, export
status, manifest pages, files, redirect targets, ``next`` links) passes :func:`require_https`
before a connection is made. Plain ``http`` is accepted only for loopback hosts (127.0.0.0/8,
``::1``, ``localhost``), or everywhere when ``FHIR_ALLOW_INSECURE_HTTP=1`` is set: an opt-in
for test servers, warned about once per process. The variable is read at each check (not at
import), so a test or a CLI run can set it late.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

log = logging.getLogger(__name__)

ALLOW_INSECURE_ENV = "FHIR_ALLOW_INSECURE_HTTP"
_warned = threading.Event()


class InsecureUrlError(ConfigurationError):
    """A URL would send credentials or data unencrypted (or is not a web URL at all)."""


def redact(url: str) -> str:
    """The URL without its query string (identifiers, cursors) and without user:password."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with default ports filled in (RFC 6454)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def show_origin(url: str) -> str:
    """An origin as text, for messages: ``https://host:port``."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https(url: str, what: str, *, environ: Mapping[str, str] | None = None) -> str:
    """``url`` if it may be connected to: https, or http to a loopback host (or opted in).

    Args:
        url: the absolute URL about to be used.
        what: what it is, for the message (``FHIR base URL``, ``token endpoint``...).
        environ: where to read ``FHIR_ALLOW_INSECURE_HTTP`` (default: the process environment).

    Raises:
        InsecureUrlError: plain http to another host without the opt-in, or not an http(s) URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return url
    if scheme != "http" or not parts.hostname:
        raise InsecureUrlError(f"{what} {redact(url)!r} is not an https:// URL: use https://")
    if is_loopback(parts.hostname):
        return url
    env = os.environ if environ is None else environ
    if env.get(ALLOW_INSECURE_ENV) == "1":
        if not _warned.is_set():
            _warned.set()
            log.warning(
                "%s=1: plain http is allowed to any host (seen first for %s %s); tokens and "
                "patient data cross the network unencrypted. For test servers only.",
                ALLOW_INSECURE_ENV,
                what,
                redact(url),
            )
        return url
    raise InsecureUrlError(
        f"refusing plain http for {what} {redact(url)}: credentials and patient data would "
        f"cross the network unencrypted. Use https://; only for a test server, set "
        f"{ALLOW_INSECURE_ENV}=1"
    )


def require_same_origin(url: str, base: str, what: str) -> str:
    """``url`` if it has the origin of ``base``.

    Raises:
        InsecureUrlError: naming both origins.
    """
    if origin(url) != origin(base):
        raise InsecureUrlError(
            f"{what} points to {show_origin(url)}, another origin than the server's "
            f"{show_origin(base)}: the server is misconfigured or hostile; refusing to follow it"
        )
    return url
