"""What a Bulk Data server's answers mean: a transient status failure, Epic's "too recently", a
refused kick-off, the types a CapabilityStatement lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import requests

from ..client import decode
from ..errors import RequestError
from ..retry import TRANSIENT_STATUSES
from .manifest import ExportError, ExportRequest, ExportTooSoonError

# OperationOutcome issue codes that mean "try again later" (IG v2 status request: a polling
# failure that does not end the job SHOULD carry a transient code).
TRANSIENT_CODES = frozenset({"transient", "throttled", "timeout", "lock-error", "incomplete"})


def outcome_codes(response: requests.Response) -> set[str]:
    try:
        body = orjson.loads(response.content or b"{}")
    except orjson.JSONDecodeError:
        return set()
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return set()
    return {str(i.get("code")) for i in body.get("issue") or () if isinstance(i, dict)}


def transient_failure(response: requests.Response) -> bool:
    """A 5xx on the status URL that does not end the job: a gateway error without an
    OperationOutcome, or one whose issue code is transient (IG v2, status request)."""
    codes = outcome_codes(response)
    return (not codes and response.status_code in TRANSIENT_STATUSES) or bool(
        codes & TRANSIENT_CODES
    )


def too_soon(response: requests.Response) -> bool:
    # Epic answers a repeated Group export inside its window with an OperationOutcome saying the
    # client "requested this Group too recently": retrying only repeats the refusal.
    return b"too recently" in (response.content or b"").lower()


def refusal(request: ExportRequest, response: requests.Response) -> ExportError:
    what = f"{request.level}-level export" + (
        f" of Group/{request.group_id}" if request.group_id else ""
    )
    try:
        decode(response)
    except RequestError as exc:
        issues = exc.issues
        if too_soon(response):
            return ExportTooSoonError(
                f"the server refused a new {what}: it was requested too recently "
                "(Epic allows one export per client and group within its window). Wait before "
                "retrying, and make sure the previous export job was DELETEd "
                "(fhir-assets export --cancel --out DIR).",
                issues=issues,
            )
        detail = "; ".join(issues) or response.reason or "no OperationOutcome"
        return ExportError(
            f"the server refused the {what} (HTTP {response.status_code}): {detail}", issues=issues
        )
    return ExportError(
        f"the server answered the {what} kick-off with HTTP {response.status_code}, not 202 "
        "Accepted: it does not run this export asynchronously"
    )


def server_types(capabilities: Mapping[str, Any]) -> set[str]:
    """The resource types a CapabilityStatement lists (``rest[mode=server].resource.type``)."""
    return {
        str(resource.get("type"))
        for rest in capabilities.get("rest") or ()
        if isinstance(rest, Mapping) and rest.get("mode", "server") == "server"
        for resource in rest.get("resource") or ()
        if isinstance(resource, Mapping) and resource.get("type")
    }
