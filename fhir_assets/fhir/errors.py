"""The one exception tree of the FHIR client library.

Every error raised by ``fhir_assets.fhir`` is a :class:`FhirError`. Foreign exceptions (requests,
authlib, json) are converted at the edge with ``raise X(...) from exc``. Messages never contain an
access token, a client assertion, a secret, a private key or a resource body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FhirError(Exception):
    """Root of every error raised by the FHIR client library."""


class ConfigurationError(FhirError):
    """The client was configured in a way that cannot work (missing key, bad URL, ...)."""


class AuthError(FhirError):
    """Obtaining or using an access token failed."""


class RequestError(FhirError):
    """A FHIR request failed with an HTTP status the caller should not simply retry.

    Attributes:
        status: the HTTP status code (``None`` when no response arrived).
        url: the request URL without its query string.
        issues: ``diagnostics``/``details.text`` of the OperationOutcome issues, when one came back.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str = "",
        issues: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.issues = issues


class TransientRequestError(RequestError):
    """A request failed in a way that is worth retrying (408, 429, 5xx, dropped connection)."""


class ResponseFormatError(RequestError):
    """The server answered, but not with the FHIR JSON that was expected (HTML page, bad JSON)."""


class PagingError(FhirError):
    """Search paging cannot continue safely (for example a ``next`` link that repeats)."""


def outcome_issues(body: Any) -> tuple[str, ...]:
    """Return the human-readable texts of an OperationOutcome's issues, or ``()``."""
    if not isinstance(body, Mapping) or body.get("resourceType") != "OperationOutcome":
        return ()
    texts = []
    for issue in body.get("issue") or ():
        if not isinstance(issue, Mapping):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (
            details.get("text") if isinstance(details, Mapping) else None
        )
        severity = issue.get("severity", "error")
        code = issue.get("code", "")
        texts.append(f"{severity}/{code}: {text}" if text else f"{severity}/{code}")
    return tuple(texts)
