"""One quick look at a FHIR base URL before a command relies on it.

``GET {base}/metadata`` once, without retries: the client library retries a refused connection
for half a minute and then reports the step it was on (often SMART discovery: "set
FHIR_TOKEN_URL"), while the cause is a wrong host, a wrong path or a URL that is not a FHIR
server. This tells those apart and names the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import CliError

if TYPE_CHECKING:
    from ..fhir.settings import ServerSettings
    from ..settings import FhirSettings

HOST_FIX = "check the host and port of FHIR_BASE_URL (or --base-url) and that the server runs"
PATH_FIX = (
    "FHIR_BASE_URL must be the FHIR base, the URL whose /metadata answers a "
    "CapabilityStatement (e.g. https://host/fhir/R4)"
)


def _plain(url: str) -> str:
    """``url`` without query string, fragment or user info (never echo a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def capability_statement(base_url: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """The server's CapabilityStatement, ``None`` when ``/metadata`` needs a token.

    Raises:
        CliError: the host cannot be reached, or the URL is not a FHIR server's base.
    """
    import requests

    from ..fhir.http import new_session

    if not base_url:
        raise CliError("no FHIR server configured", "set FHIR_BASE_URL (or pass --base-url)")
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise CliError(f"FHIR_BASE_URL {base_url!r} is not an http(s) URL", PATH_FIX)
    _require_https(base_url)  # the probe is a request like any other: no plain http off-machine
    url = f"{_plain(base_url).rstrip('/')}/metadata"
    try:
        http = new_session()  # redirects re-checked hop by hop (https and origin rules)
        response = http.get(url, headers={"Accept": "application/fhir+json"}, timeout=timeout)
    except requests.exceptions.SSLError as exc:
        raise CliError(f"TLS handshake with {url} failed", "check the URL's scheme and the "
                       "server's certificate (REQUESTS_CA_BUNDLE)") from exc  # fmt: skip
    except requests.exceptions.Timeout as exc:
        raise CliError(f"{url} did not answer within {timeout:g} s", HOST_FIX) from exc
    except requests.exceptions.ConnectionError as exc:
        raise CliError(f"cannot reach {url} ({_why(exc)})", HOST_FIX) from exc
    if response.status_code in (401, 403):
        # The spec has /metadata answer without a token, but a few servers protect it; then
        # SMART's public .well-known/smart-configuration shows the base is right. Otherwise
        # a wrong path under a protected server (sekmet: "/fhir/wrong") looks like this.
        if _has_smart_configuration(http, base_url, timeout):
            return None
        raise CliError(f"no FHIR server at {_plain(base_url)}: GET {url} answered HTTP "
                       f"{response.status_code} and there is no SMART configuration",
                       PATH_FIX)  # fmt: skip
    if response.status_code != 200:
        raise CliError(f"no FHIR server at {_plain(base_url)}: GET {url} answered HTTP "
                       f"{response.status_code}", PATH_FIX)  # fmt: skip
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
        what = "JSON that is not a CapabilityStatement" if body is not None else kind
        raise CliError(f"{_plain(base_url)} is not a FHIR server: GET {url} answered {what}",
                       PATH_FIX)  # fmt: skip
    return body


def _require_https(base_url: str) -> None:
    from ..fhir.urls import InsecureUrlError, require_https

    try:
        require_https(base_url, "FHIR base URL")
    except InsecureUrlError as exc:
        raise CliError(str(exc)) from None  # its message says what to do


def _has_smart_configuration(http: Any, base_url: str, timeout: float) -> bool:
    import requests

    from ..fhir.errors import FhirError

    url = f"{_plain(base_url).rstrip('/')}/.well-known/smart-configuration"
    try:
        response = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
        return response.status_code == 200 and isinstance(response.json(), dict)
    except (requests.RequestException, FhirError, ValueError):
        return False


def _why(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
        return "unknown host"
    if "Connection refused" in text:
        return "connection refused"
    return type(exc).__name__


def check_private_key(path: str | None) -> None:
    """Fail naming the file when ``FHIR_PRIVATE_KEY_PATH`` is not a readable private key.

    Raises:
        CliError: the file is missing, unreadable, or not a PEM/JWK private key.
    """
    if not path:
        return
    from ..fhir.errors import ConfigurationError
    from ..fhir.keys import load_private_key

    fix = (
        "FHIR_PRIVATE_KEY_PATH must name the PEM or JWK private key registered with the "
        "server (`fhir-assets keys generate --out FILE` writes one)"
    )
    # Key text put in the path variable is never echoed.
    name = path if len(path) < 512 and not path.lstrip().startswith(("-----", "{")) else "(text)"
    try:
        load_private_key(path)
    except ConfigurationError as exc:
        raise CliError(f"private key file {name}: {exc}", fix) from exc
    except OSError as exc:
        raise CliError(f"private key file {name}: {exc.strerror}", fix) from exc


def checked_server(
    fhir: FhirSettings,
    resource_types: tuple[str, ...] = (),
    scopes: str | None = None,
    *,
    probe: bool = True,
) -> ServerSettings:
    """``fhir.server(...)`` after checking its URL (unless ``probe`` is false) and key file.

    Raises:
        CliError: see :func:`capability_statement` and :func:`check_private_key`.
    """
    if probe:
        capability_statement(fhir.base_url)
    check_private_key(fhir.private_key_path if not fhir.private_key else None)
    return fhir.server(resource_types, scopes=scopes)
