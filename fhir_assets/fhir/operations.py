"""FHIR operations through the server's one client: ``$everything``, ``$validate``, ``$extract``.

Every request goes through the :class:`~fhir_assets.fhir.client.FhirClient` it is given (its
session, retry policy, rate limit and error scrubbing); nothing here opens a connection of its own.
Loops over server input are bounded by :class:`OperationLimits` (pages and a deadline).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from .client import FHIR_JSON, FhirClient, redact
from .errors import FhirError, PagingError, RequestError, ResponseFormatError, outcome_issues
from .redaction import scrub

log = logging.getLogger(__name__)

Resource = dict[str, Any]
SEVERITIES = ("fatal", "error", "warning", "information")
MESSAGE_CHARS = 120  # a top message is cut here: diagnostics are free text
# Diagnostics may quote the value that failed ("'Smith' is not ..."): PHI. Quoted runs are masked.
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
UNSUPPORTED_STATUSES = (405, 501)


class OperationNotSupportedError(RequestError):
    """The server does not offer the operation (its answer is in the message)."""


@dataclass(frozen=True, slots=True)
class OperationLimits:
    """Bounds on what one operation run reads from the server.

    Attributes:
        max_pages: Bundle pages followed per call (``FHIR_OPERATION_MAX_PAGES``).
        deadline_s: seconds one call may take, pages included (``FHIR_OPERATION_DEADLINE_S``).
        clock: the monotonic clock (injected by tests).
    """

    max_pages: int = 1000
    deadline_s: float = 3600.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)


def everything_pages(
    client: FhirClient,
    patient_id: str,
    *,
    since: str | None = None,
    types: Sequence[str] = (),
    limits: OperationLimits | None = None,
) -> Iterator[list[Resource]]:
    """Yield the resources of ``Patient/{id}/$everything`` page by page, following ``next`` links.

    Every entry's resource is yielded (``$everything`` marks some entries ``include``; all are the
    patient's record), except OperationOutcomes, whose issues are logged.

    Raises:
        OperationNotSupportedError: the server does not support ``Patient/$everything``.
        PagingError: more than ``limits.max_pages`` pages, the deadline passed, or a repeated link.
        RequestError: any other failure (patient not found, ...).
    """
    limits = limits or OperationLimits()
    what = f"Patient/{patient_id}/$everything"
    params: list[tuple[str, str]] = [("_since", since)] if since else []
    if types:
        params.append(("_type", ",".join(types)))
    deadline = limits.clock() + limits.deadline_s
    try:
        # an operation's answer is the server's data: never from a redirect to another origin
        bundle = client.get(
            f"Patient/{quote(patient_id, safe='')}/$everything",
            params or None,
            redirects="same-origin",
        )
    except RequestError as exc:
        raise unsupported_or_same(exc, "Patient/$everything") from exc
    seen: set[str] = set()
    for number in range(1, limits.max_pages + 1):
        resources, next_url = bundle_resources(bundle, what)
        yield resources
        if next_url is None:
            return
        if next_url in seen:
            raise PagingError(f"{what}: the server repeated a next link ({redact(next_url)})")
        if number == limits.max_pages:
            break
        if limits.clock() > deadline:
            raise PagingError(
                f"{what}: not finished after {limits.deadline_s:.0f} s ({number} pages); "
                "raise FHIR_OPERATION_DEADLINE_S"
            )
        seen.add(next_url)
        bundle = client.get(client._own_link(what, next_url), redirects="same-origin")
    raise PagingError(f"{what}: more than {limits.max_pages} pages; raise FHIR_OPERATION_MAX_PAGES")


def bundle_resources(bundle: Mapping[str, Any], what: str) -> tuple[list[Resource], str | None]:
    """Every resource of a Bundle except OperationOutcomes (logged), and its ``next`` link.

    A malformed entry is passed on as it is, for the landing to quarantine, never dropped."""
    if bundle.get("resourceType") != "Bundle":
        raise ResponseFormatError(
            f"{what} answered with {bundle.get('resourceType')!r}, not a Bundle"
        )
    resources = []
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, Mapping) else entry
        if resource is None:  # an entry without a resource (a deleted one): nothing to land
            continue
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            for issue in outcome_issues(resource):
                log.warning("%s: server reported %s", what, scrub(issue, ()))
        else:
            resources.append(resource)
    links = bundle.get("link") or ()
    next_url = next((link.get("url") for link in links if link.get("relation") == "next"), None)
    return resources, next_url


def unsupported_or_same(exc: RequestError, operation: str) -> RequestError:
    """``exc`` as :class:`OperationNotSupportedError` when the server says it lacks the operation
    (405/501, an OperationOutcome ``not-supported``, or a 404 that is not about a missing resource).
    """
    codes = " ".join(exc.issues)
    missing_op = exc.status == 404 and "not-found" not in codes
    if exc.status in UNSUPPORTED_STATUSES or "not-supported" in codes or missing_op:
        answer = "; ".join(exc.issues) or "no OperationOutcome"
        return OperationNotSupportedError(
            f"the server does not support {operation}: it answered HTTP {exc.status} ({answer})",
            status=exc.status,
            url=exc.url,
            issues=exc.issues,
        )
    return exc


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome issue, its text made safe to log (:func:`safe_message`)."""

    severity: str
    code: str
    message: str


def outcome(body: Any) -> tuple[Issue, ...]:
    """The issues of an OperationOutcome (none for anything else)."""
    if not isinstance(body, Mapping) or body.get("resourceType") != "OperationOutcome":
        return ()
    found = []
    for item in body.get("issue") or ():
        if not isinstance(item, Mapping):
            continue
        severity = str(item.get("severity") or "error")
        code = str(item.get("code") or "")
        found.append(Issue(severity, code, safe_message(item)))
    return tuple(found)


def safe_message(item: Mapping[str, Any]) -> str:
    """``code at expression: diagnostics``, quoted runs masked, tokens scrubbed, at most
    ``MESSAGE_CHARS`` characters (a server's diagnostics may echo the value it refused)."""
    details = item.get("details")
    text = item.get("diagnostics") or (details.get("text") if isinstance(details, Mapping) else "")
    where = item.get("expression") or item.get("location") or ()
    where_text = ",".join(str(w) for w in where)[:60] if isinstance(where, list) else ""
    masked = QUOTED.sub("'…'", scrub(str(text or ""), ()))
    message = f"{item.get('code') or 'issue'}{' at ' + where_text if where_text else ''}: {masked}"
    return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"


def validate(
    client: FhirClient, resource: Mapping[str, Any], profile: str | None = None
) -> tuple[Issue, ...]:
    """``POST [type]/$validate`` with the resource (and ``profile``); the issues found.

    A server may answer an invalid resource with HTTP 400/422 and the OperationOutcome: those
    issues are returned too.

    Raises:
        OperationNotSupportedError: the server does not support ``$validate``.
        RequestError: another failure.
    """
    resource_type = str(resource.get("resourceType"))
    parameters: list[dict[str, Any]] = [{"name": "resource", "resource": resource}]
    if profile:
        parameters.append({"name": "profile", "valueUri": profile})
    body = {"resourceType": "Parameters", "parameter": parameters}
    try:
        answer = post(client, f"{resource_type}/$validate", body)
    except RequestError as exc:
        failed = unsupported_or_same(exc, f"{resource_type}/$validate")
        if isinstance(failed, OperationNotSupportedError) or exc.status not in (400, 412, 422):
            raise failed from exc
        return tuple(issue_of_text(text) for text in exc.issues) or (
            Issue("error", "invalid", f"HTTP {exc.status} without OperationOutcome"),
        )
    return outcome(answer)


def issue_of_text(text: str) -> Issue:
    """An issue from the client's ``severity/code: text`` form (already scrubbed of tokens)."""
    head, _, message = text.partition(": ")
    severity, _, code = head.partition("/")
    masked = QUOTED.sub("'…'", message)
    message = f"{code or 'issue'}: {masked}"[:MESSAGE_CHARS]
    return Issue(severity or "error", code, message)


def extract(client: FhirClient, response_id: str) -> list[Resource]:
    """``QuestionnaireResponse/{id}/$extract`` (GET, else POST): the resources the server extracts.

    The answer is a Bundle (SDC: a transaction Bundle) or a single resource.

    Raises:
        OperationNotSupportedError: the server offers no ``$extract``.
        RequestError: the server could not extract this response (its issues in ``issues``).
    """
    path = f"QuestionnaireResponse/{quote(response_id, safe='')}/$extract"
    try:
        # SDC: $extract does not change the server (affectsState false), so GET is allowed and
        # needs only read access; a server that wants POST says 405, then it gets POST
        try:
            answer = client.get(path)
        except RequestError as exc:
            if exc.status != 405:
                raise
            answer = post(client, path, {"resourceType": "Parameters"})
    except RequestError as exc:
        raise unsupported_or_same(exc, "QuestionnaireResponse/$extract") from exc
    if answer.get("resourceType") == "Bundle":
        resources, _ = bundle_resources(answer, path)
        return resources
    if answer.get("resourceType") == "OperationOutcome":
        issues = outcome(answer)
        if any(i.severity in ("fatal", "error") for i in issues):
            raise RequestError(
                f"{path}: " + "; ".join(i.message for i in issues),
                status=200,
                issues=tuple(f"{i.severity}/{i.code}: {i.message}" for i in issues),
            )
        return []
    return [answer] if isinstance(answer.get("resourceType"), str) else []


def post(client: FhirClient, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST a FHIR JSON body to ``path`` through the client."""
    return client.request(
        "POST", path, data=orjson.dumps(body), headers={"Content-Type": FHIR_JSON}
    )


def severity_counts(issues: Sequence[Issue]) -> dict[str, int]:
    """How many issues of each severity (every severity present, zeros included)."""
    counts = Counter(issue.severity for issue in issues)
    return {severity: counts.get(severity, 0) for severity in SEVERITIES}


def top_messages(issues: Sequence[Issue], n: int = 5) -> list[str]:
    """The ``n`` most frequent issue messages as ``count x severity message``."""
    counts = Counter((issue.severity, issue.message) for issue in issues)
    return [
        f"{count} x {severity} {message}" for (severity, message), count in counts.most_common(n)
    ]


__all__ = [
    "FhirError",
    "Issue",
    "OperationLimits",
    "OperationNotSupportedError",
    "everything_pages",
    "extract",
    "outcome",
    "severity_counts",
    "top_messages",
    "validate",
]
