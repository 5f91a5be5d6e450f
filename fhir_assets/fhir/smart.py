"""SMART discovery: ``{base}/.well-known/smart-configuration`` (SMART App Launch 2.x, section
"Conformance"), falling back to the CapabilityStatement's ``oauth-uris`` security extension that
SMART 1.0 servers publish.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests

from .client import redact
from .errors import ConfigurationError
from .http import new_session
from .scopes import is_v2
from .urls import require_https

log = logging.getLogger(__name__)

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_LISTS = (
    "scopes_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "grant_types_supported",
    "capabilities",
    "code_challenge_methods_supported",
)


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    """What a server says about its authorization (the parts fhir-assets uses)."""

    token_endpoint: str
    authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scopes_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...] = ()
    grant_types_supported: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, *, source: str = "smart-configuration") -> SmartConfiguration:
        """Validate and read a smart-configuration document.

        Raises:
            ConfigurationError: not an object, no absolute ``token_endpoint``, or a field of the
                wrong type; the message names the field.
        """
        if not isinstance(data, dict):
            raise ConfigurationError(f"{source} is not a JSON object")
        values: dict[str, Any] = {"token_endpoint": _url(data, "token_endpoint", source)}
        for name in ("authorization_endpoint", "revocation_endpoint"):
            if data.get(name) is not None:
                values[name] = _url(data, name, source)
        for name in _LISTS:
            items = data.get(name, [])
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigurationError(f"{source}: {name} must be a list of strings")
            values[name] = tuple(items)
        return cls(**values)

    @property
    def supports_v2_scopes(self) -> bool:
        """Whether the server takes SMART v2 scopes (``.rs``): ``permission-v2``, or v2 examples
        in ``scopes_supported`` when it lists no permission capability at all."""
        if "permission-v2" in self.capabilities:
            return True
        if "permission-v1" in self.capabilities:
            return False
        return any(is_v2(s) for s in self.scopes_supported)


def _url(data: dict[str, Any], name: str, source: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ConfigurationError(f"{source}: {name} is missing or not an absolute URL")
    return require_https(value, f"{source}: {name}")


def discover(
    base_url: str, *, session: requests.Session | None = None, timeout: float = 30.0
) -> SmartConfiguration:
    """Read the server's SMART configuration.

    Tries ``{base}/.well-known/smart-configuration``; if that is absent or not JSON, reads the
    token/authorize URIs from ``{base}/metadata`` (the ``oauth-uris`` extension).

    Raises:
        ConfigurationError: a smart-configuration that is JSON but malformed, or neither source
            names a token endpoint (set ``FHIR_TOKEN_URL`` to skip discovery).
    """
    base = require_https(base_url, "FHIR base URL").rstrip("/")
    http = session or new_session()
    url = f"{base}/.well-known/smart-configuration"
    body, problem = _get_json(http, url, timeout)
    if not problem:  # a JSON answer: the server claims SMART, so a broken one is an error
        return SmartConfiguration.from_json(body, source=redact(url))
    log.info("no SMART configuration at %s (%s); reading the CapabilityStatement", url, problem)
    metadata, meta_problem = _get_json(http, f"{base}/metadata", timeout)
    uris = _oauth_uris(metadata)
    if "token" not in uris:
        raise ConfigurationError(
            f"cannot discover the token endpoint of {redact(base)}: "
            f".well-known/smart-configuration {problem}; metadata "
            f"{meta_problem or 'has no oauth-uris security extension'}. Set FHIR_TOKEN_URL."
        )
    for name in ("token", "authorize", "revoke"):
        if name in uris:
            require_https(uris[name], f"{redact(base)}/metadata oauth-uris {name}")
    return SmartConfiguration(
        token_endpoint=uris["token"],
        authorization_endpoint=uris.get("authorize"),
        revocation_endpoint=uris.get("revoke"),
    )


def _get_json(http: requests.Session, url: str, timeout: float) -> tuple[Any, str]:
    """``(body, "")`` for a JSON answer, else ``(None, what was wrong)`` (never the body)."""
    try:
        response = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except requests.RequestException as exc:
        return None, f"could not be reached ({type(exc).__name__})"
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    if response.status_code != 200:
        return None, f"answered HTTP {response.status_code}"
    try:
        return response.json(), ""
    except ValueError:
        return None, f"answered {kind}, not JSON"


def _oauth_uris(metadata: Any) -> dict[str, str]:
    """The ``oauth-uris`` extension's URLs by name (``token``, ``authorize``, ``revoke``...)."""
    uris: dict[str, str] = {}
    if not isinstance(metadata, dict):
        return uris
    for rest in metadata.get("rest") or ():
        security = rest.get("security") if isinstance(rest, dict) else None
        for ext in (security or {}).get("extension") or ():
            if not isinstance(ext, dict) or ext.get("url") != OAUTH_URIS:
                continue
            for item in ext.get("extension") or ():
                if isinstance(item, dict) and isinstance(item.get("valueUri"), str):
                    uris[str(item.get("url"))] = item["valueUri"]
    return uris
