"""Wire formats of Bulk Data Access IG v2: the kick-off request, the job and the manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import FhirError, ResponseFormatError
from ..names import check_resource_type, shown

LEVELS = ("system", "patient", "group")
KINDS = ("output", "error", "deleted")
NDJSON = "application/fhir+ndjson"


class ExportError(FhirError):
    """A bulk export failed, was refused or can no longer continue.

    Attributes:
        issues: the OperationOutcome texts the server sent, if any.
    """

    def __init__(self, message: str, *, issues: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.issues = issues


class ExportGoneError(ExportError):
    """The server no longer knows the job or its files (expired, deleted, server restarted)."""


class ExportTooSoonError(ExportError):
    """The server refuses a new export because one ran (or runs) too recently for this group."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export (Bulk Data IG v2, "Query Parameters").

    Attributes:
        level: ``system`` (``[base]/$export``), ``patient`` (``Patient/$export``) or ``group``.
        group_id: the Group for ``group`` level.
        types: ``_type`` resource types (empty: all the server offers).
        since: ``_since`` instant, as the server wants it.
        type_filters: ``_typeFilter`` queries such as ``Observation?status=final``.
        elements: ``_elements`` (servers may ignore it).
        patients: ``patient`` references (``Patient/123``); sent in a POSTed Parameters body.
        output_format: ``_outputFormat``.
    """

    level: str = "system"
    group_id: str | None = None
    types: tuple[str, ...] = ()
    since: str | None = None
    type_filters: tuple[str, ...] = ()
    elements: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    output_format: str = NDJSON

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"export level must be one of {LEVELS}, not {self.level!r}")
        if self.level == "group" and not self.group_id:
            raise ValueError("a group-level export needs a group id")

    @property
    def path(self) -> str:
        """The kick-off path relative to the FHIR base."""
        if self.level == "group":
            return f"Group/{self.group_id}/$export"
        return "Patient/$export" if self.level == "patient" else "$export"

    def params(self, *, join_types: bool = True) -> list[tuple[str, str]]:
        """Query parameters of a GET kick-off.

        Args:
            join_types: send ``_type`` once, comma-joined (the IG's form; Oracle Health/Cerner
                requires it); ``False`` repeats ``_type`` per type.
        """
        params = [("_outputFormat", self.output_format)]
        if self.types:
            values = [",".join(self.types)] if join_types else list(self.types)
            params += [("_type", value) for value in values]
        if self.since:
            params.append(("_since", self.since))
        params += [("_typeFilter", query) for query in self.type_filters]
        if self.elements:
            params.append(("_elements", ",".join(self.elements)))
        return params

    def parameters(self, *, join_types: bool = True) -> dict[str, Any]:
        """The same request as a FHIR Parameters resource, for a POST kick-off (needed for
        ``patient``, which the IG allows only in the POST form)."""
        parameter: list[dict[str, Any]] = [
            {"name": name, "valueString": value}
            for name, value in self.params(join_types=join_types)
        ]
        parameter += [
            {"name": "patient", "valueReference": {"reference": p}} for p in self.patients
        ]
        return {"resourceType": "Parameters", "parameter": parameter}

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "group_id": self.group_id,
            "types": list(self.types),
            "since": self.since,
            "type_filters": list(self.type_filters),
            "elements": list(self.elements),
            "patients": list(self.patients),
            "output_format": self.output_format,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportRequest:
        return cls(
            level=data["level"],
            group_id=data.get("group_id"),
            types=tuple(data.get("types") or ()),
            since=data.get("since"),
            type_filters=tuple(data.get("type_filters") or ()),
            elements=tuple(data.get("elements") or ()),
            patients=tuple(data.get("patients") or ()),
            output_format=data.get("output_format") or NDJSON,
        )


@dataclass(frozen=True, slots=True)
class ExportJob:
    """A kicked-off export: where to poll, and when it started (seconds since the epoch)."""

    status_url: str
    started_at: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportJob:
        return cls(str(data["status_url"]), float(data["started_at"]))

    def to_json(self) -> dict[str, Any]:
        return {"status_url": self.status_url, "started_at": self.started_at}


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file of a manifest. ``kind`` is ``output``, ``error`` or ``deleted``."""

    type: str
    url: str
    count: int | None = None
    kind: str = "output"

    @classmethod
    def from_json(cls, data: Any, kind: str) -> OutputFile:
        """Read one manifest entry; its ``type`` becomes a table and a file name, so it must be
        an R4 resource type name (``names.check_resource_type``).

        Raises:
            ResponseFormatError: ``type`` or ``url`` is missing, or ``kind`` is unknown.
            UnsafeNameError: ``type`` is not an R4 resource type name.
        """
        if not isinstance(data, Mapping) or not data.get("url") or not data.get("type"):
            raise ResponseFormatError(f"manifest {kind} entry lacks 'type' or 'url'")
        if kind not in KINDS:
            raise ResponseFormatError(f"manifest file kind {shown(kind)} is not one of {KINDS}")
        resource_type = check_resource_type(data["type"], source=f"the manifest's {kind} entry")
        count = data.get("count")
        return cls(resource_type, str(data["url"]), count if isinstance(count, int) else None, kind)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "url": self.url, "count": self.count, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Manifest:
    """A complete-status manifest (all pages of it, when the server pages it with ``link``).

    Attributes:
        transaction_time: the server's instant the export reflects: the next ``_since``.
        request: the kick-off URL the server echoes.
        requires_access_token: whether file downloads need the bearer token.
        files: output, error and deleted files, in manifest order.
    """

    transaction_time: str
    request: str
    requires_access_token: bool
    files: tuple[OutputFile, ...] = field(default=())

    @classmethod
    def from_json(cls, body: Any) -> Manifest:
        """Parse one manifest page (``link`` paging is followed by the caller).

        Raises:
            ResponseFormatError: required fields are missing.
        """
        if not isinstance(body, Mapping) or "transactionTime" not in body:
            raise ResponseFormatError("the export status answered 200 without a manifest")
        files = tuple(
            OutputFile.from_json(item, kind)
            for kind in ("output", "error", "deleted")
            for item in body.get(kind) or ()
        )
        return cls(
            str(body["transactionTime"]),
            str(body.get("request", "")),
            bool(body.get("requiresAccessToken", True)),
            files,
        )

    def with_files(self, more: tuple[OutputFile, ...]) -> Manifest:
        """This manifest with the files of a further page appended."""
        return Manifest(
            self.transaction_time, self.request, self.requires_access_token, self.files + more
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "transactionTime": self.transaction_time,
            "request": self.request,
            "requiresAccessToken": self.requires_access_token,
            **{
                kind: [
                    {"type": f.type, "url": f.url}
                    | ({"count": f.count} if f.count is not None else {})
                    for f in self.files
                    if f.kind == kind
                ]
                for kind in ("output", "error", "deleted")
            },
        }


def format_instant(value: str) -> str:
    """An ISO 8601 instant as ``YYYY-MM-DDThh:mm:ss.sssZ`` in UTC, the form every server reads
    (and the only one servers that compare ``_since`` as a string, like sekmet, get right).

    Raises:
        ValueError: ``value`` is not an ISO 8601 date-time with a time zone.
    """
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; _since must be an instant (add Z or +hh:mm)")
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_link(body: Mapping[str, Any]) -> str | None:
    """The manifest's ``link`` with relation ``next`` (IG v2 manifest paging), if any."""
    for link in body.get("link") or ():
        if isinstance(link, Mapping) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None
