"""FHIR R4 write interactions: create, update, conditional writes, delete, transaction/batch.

Single interactions return an :class:`EntryOutcome` (status, id, version, ETag); a 412 raises
:class:`PreconditionFailedError`. Bundles are built from :class:`BundleEntry` values, entries
refer to each other through ``urn:uuid`` full URLs (FHIR R4 3.1.0.11.2), and the response Bundle
is parsed into one :class:`EntryOutcome` per entry, in request order.

Retries: the client's :class:`RetryPolicy` covers PUT and DELETE (transient failures, the
server's ``Retry-After`` honoured). A POST (a create, a transaction) is resent only by
:meth:`WriteClient.submit_idempotent`, and only when every entry is safe to repeat
(:func:`is_retry_safe`): a conditional create, a PUT, a DELETE or a read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import requests

from .client import FHIR_JSON, IDEMPOTENT, FhirClient, RetryPolicy, decode, redact
from .errors import RequestError, ResponseFormatError, TransientRequestError, outcome_issues

log = logging.getLogger(__name__)

BundleKind = Literal["transaction", "batch"]
RESPONSE_KINDS = ("transaction-response", "batch-response")
# Prefer: return=representation makes the server send the stored resource (id, meta.versionId).
REPRESENTATION = {"Prefer": "return=representation", "Content-Type": FHIR_JSON}


class PreconditionFailedError(RequestError):
    """HTTP 412: an ``If-Match`` version is stale, or a conditional write matched several."""


def token(system: str, value: str) -> str:
    """A ``system|value`` token search value, escaped per FHIR R4 search 3.1.1.4.9."""

    def escape(text: str) -> str:
        for char in ("\\", ",", "|", "$"):
            text = text.replace(char, "\\" + char)
        return text

    return f"{escape(system)}|{escape(value)}"


def new_full_url(make_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A fresh ``urn:uuid:`` full URL for a bundle entry that other entries can reference."""
    return f"urn:uuid:{make_uuid()}"


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One request of a transaction or batch Bundle. ``repr`` never shows the resource."""

    method: Literal["POST", "PUT", "DELETE", "GET"]
    url: str
    resource: Mapping[str, Any] | None = field(default=None, repr=False)
    full_url: str | None = None
    if_none_exist: str | None = None
    if_match: str | None = None

    @classmethod
    def create(
        cls, resource: Mapping[str, Any], *, if_none_exist: str | None = None, full_url: str = ""
    ) -> BundleEntry:
        """POST ``[type]``; conditional when ``if_none_exist`` is a query (``identifier=s|v``)."""
        url = full_url or new_full_url()
        return cls("POST", resource["resourceType"], resource, url, if_none_exist=if_none_exist)

    @classmethod
    def update(cls, resource: Mapping[str, Any], *, version_id: str | None = None) -> BundleEntry:
        """PUT ``[type]/[id]``; version-aware (``If-Match``) when ``version_id`` is given."""
        url = f"{resource['resourceType']}/{resource['id']}"
        if_match = f'W/"{version_id}"' if version_id else None
        return cls("PUT", url, resource, if_match=if_match)

    @classmethod
    def conditional_update(cls, resource: Mapping[str, Any], criteria: str) -> BundleEntry:
        """PUT ``[type]?[criteria]``: update the single match, or create when none matches."""
        return cls("PUT", f"{resource['resourceType']}?{criteria}", resource)

    @classmethod
    def delete(cls, resource_type: str, resource_id: str) -> BundleEntry:
        """DELETE ``[type]/[id]``."""
        return cls("DELETE", f"{resource_type}/{resource_id}")

    def to_json(self) -> dict[str, Any]:
        """The entry as Bundle JSON."""
        request: dict[str, Any] = {"method": self.method, "url": self.url}
        if self.if_none_exist:
            request["ifNoneExist"] = self.if_none_exist
        if self.if_match:
            request["ifMatch"] = self.if_match
        entry: dict[str, Any] = {"request": request}
        if self.full_url:
            entry["fullUrl"] = self.full_url
        if self.resource is not None:
            entry["resource"] = dict(self.resource)
        return entry


def build_bundle(
    entries: Sequence[BundleEntry], kind: BundleKind = "transaction"
) -> dict[str, Any]:
    """A transaction or batch Bundle of ``entries``."""
    return {"resourceType": "Bundle", "type": kind, "entry": [e.to_json() for e in entries]}


def is_retry_safe(entries: Sequence[BundleEntry]) -> bool:
    """True when resending the bundle cannot create a duplicate: no unconditional POST."""
    return all(e.method != "POST" or e.if_none_exist for e in entries)


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """What the server did with one write: status, where the resource is, which version.

    Attributes:
        status: the HTTP status (of the interaction, or of the bundle entry).
        resource_type, id, version_id: parsed from ``Location``/ETag or the returned resource.
        issues: OperationOutcome texts when the server sent one.
        resource: the stored resource when the server returned it (never logged).
    """

    status: int
    resource_type: str | None = None
    id: str | None = None
    version_id: str | None = None
    location: str | None = None
    issues: tuple[str, ...] = ()
    resource: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status < 400

    @classmethod
    def parse(
        cls,
        status: int,
        *,
        location: str | None,
        etag: str | None,
        body: Any,
        outcome: Any = None,
    ) -> EntryOutcome:
        """Combine the parts of a response (headers or ``Bundle.entry.response``) into one."""
        resource = body if isinstance(body, dict) and "resourceType" in body else None
        if resource is not None and resource["resourceType"] == "OperationOutcome":
            outcome, resource = outcome or resource, None
        rtype, rid, vid = parse_location(location or "")
        if resource is not None:
            rtype, rid = resource["resourceType"], resource.get("id") or rid
            vid = (resource.get("meta") or {}).get("versionId") or vid
        if etag:
            vid = etag.removeprefix("W/").strip('"') or vid
        return cls(status, rtype, rid, vid, location, outcome_issues(outcome), resource)


def parse_location(location: str) -> tuple[str | None, str | None, str | None]:
    """``[base]/Type/id/_history/vid`` -> (Type, id, vid); missing parts are ``None``."""
    parts = [p for p in location.split("?")[0].split("/") if p]
    if "_history" in parts:
        at = parts.index("_history")
        vid = parts[at + 1] if at + 1 < len(parts) else None
        parts = parts[:at]
    else:
        vid = None
    if len(parts) < 2:
        return None, None, vid
    return parts[-2], parts[-1], vid


def parse_status(text: str) -> int:
    """``"201 Created"`` -> 201 (Bundle.entry.response.status starts with the code)."""
    try:
        return int(text.split()[0])
    except (IndexError, ValueError) as exc:
        raise ResponseFormatError(f"bundle entry status {text!r} has no HTTP code") from exc


def parse_response_bundle(bundle: Mapping[str, Any], sent: int) -> list[EntryOutcome]:
    """One outcome per entry of a transaction-/batch-response, in request order.

    Raises:
        ResponseFormatError: not a response Bundle, or not one entry per request.
    """
    kind = bundle.get("type")
    entries = bundle.get("entry") or []
    if bundle.get("resourceType") != "Bundle" or kind not in RESPONSE_KINDS:
        raise ResponseFormatError(f"expected a transaction/batch response, got {kind!r}")
    if len(entries) != sent:
        raise ResponseFormatError(f"the response has {len(entries)} entries for {sent} requests")
    outcomes = []
    for entry in entries:
        response = entry.get("response") or {}
        outcomes.append(
            EntryOutcome.parse(
                parse_status(str(response.get("status", ""))),
                location=response.get("location"),
                etag=response.get("etag"),
                body=entry.get("resource"),
                outcome=response.get("outcome"),
            )
        )
    return outcomes


class WriteClient:
    """Write interactions on one :class:`FhirClient` (its session, auth and retries).

    Args:
        client: the connected FHIR client.
        sleep: how to wait between retries (injected by tests).
    """

    def __init__(self, client: FhirClient, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self._sleep = sleep

    def create(
        self, resource: Mapping[str, Any], *, if_none_exist: str | None = None
    ) -> EntryOutcome:
        """POST a resource; with ``if_none_exist`` the server returns 200 and the match instead."""
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        return self._send("POST", resource["resourceType"], resource, headers)

    def update(self, resource: Mapping[str, Any], *, version_id: str | None = None) -> EntryOutcome:
        """PUT ``[type]/[id]``; with ``version_id`` only if the server still holds that version.

        Raises:
            PreconditionFailedError: the resource changed since ``version_id`` (412).
        """
        headers = {"If-Match": f'W/"{version_id}"'} if version_id else {}
        path = f"{resource['resourceType']}/{resource['id']}"
        return self._send("PUT", path, resource, headers)

    def conditional_update(self, resource: Mapping[str, Any], criteria: str) -> EntryOutcome:
        """PUT ``[type]?[criteria]``: update the one match or create (412 if several match)."""
        return self._send("PUT", f"{resource['resourceType']}?{criteria}", resource, {})

    def delete(self, resource_type: str, resource_id: str) -> EntryOutcome:
        """DELETE ``[type]/[id]`` (servers answer 200 or 204, also when already deleted)."""
        return self._send("DELETE", f"{resource_type}/{resource_id}", None, {})

    def submit(
        self, entries: Sequence[BundleEntry], kind: BundleKind = "transaction"
    ) -> list[EntryOutcome]:
        """POST a transaction or batch once; return one outcome per entry, in order.

        Raises:
            PreconditionFailedError: a transaction failed on a version conflict (rolled back).
            RequestError: the server refused the transaction as a whole (rolled back).
            TransientRequestError: 5xx or no answer: the transaction may or may not have run.
        """
        bundle = build_bundle(entries, kind)
        response = self._request("POST", self.client.base_url, bundle, {})
        return parse_response_bundle(decode(response), len(entries))

    def submit_idempotent(
        self,
        entries: Sequence[BundleEntry],
        retry: RetryPolicy,
        kind: BundleKind = "transaction",
    ) -> list[EntryOutcome]:
        """Like :meth:`submit`, but transient failures are retried with backoff.

        Raises:
            ValueError: the bundle holds an unconditional create, so a resend could duplicate it.
        """
        if not is_retry_safe(entries):
            raise ValueError("a bundle with an unconditional POST cannot be resent safely")
        return retry.run(
            lambda: self.submit(entries, kind),
            retry_on=(TransientRequestError, ResponseFormatError),
            sleep=self._sleep,
            before_sleep=lambda exc, wait: log.warning(
                "%s; resending the bundle in %.1fs", exc, wait
            ),
        )

    def _send(
        self, method: str, path: str, resource: Mapping[str, Any] | None, headers: dict[str, str]
    ) -> EntryOutcome:
        def once() -> EntryOutcome:
            response = self._request(method, self.client.url(path), resource, headers)
            body = decode(response) if response.content else {}
            location = response.headers.get("Location") or response.headers.get("Content-Location")
            etag = response.headers.get("ETag")
            return EntryOutcome.parse(response.status_code, location=location, etag=etag, body=body)

        if method not in IDEMPOTENT:
            return once()  # a POST is resent only by submit_idempotent
        return self.client.retry.run(
            once,
            before_sleep=lambda exc, wait: self.client.stats.add_retry(wait),
        )

    def _request(
        self, method: str, url: str, body: Mapping[str, Any] | None, headers: dict[str, str]
    ) -> requests.Response:
        """Send one request; errors become the library's typed errors (412 its own)."""
        data = orjson.dumps(body) if body is not None else None
        try:
            response = self.client.session.request(
                method,
                url,
                data=data,
                headers={**REPRESENTATION, **headers},
                timeout=self.client.timeout,
            )
        except requests.RequestException as exc:
            raise TransientRequestError(
                f"{method} {redact(url)} failed: {type(exc).__name__}", url=redact(url)
            ) from exc
        if response.status_code == 412:
            try:
                decode(response)
            except RequestError as exc:
                raise PreconditionFailedError(
                    str(exc), status=412, url=exc.url, issues=exc.issues
                ) from exc
        if response.status_code >= 400:
            decode(response)  # raises the right RequestError
        return response
