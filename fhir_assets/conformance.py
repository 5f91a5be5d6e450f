"""``$validate`` on a sample of landed resources: what the server itself says of what landed.

Shared by the raw assets' ``server_validate`` check and ``fhir-assets validate`` (no Dagster).
The sample is the ``n`` most recently updated current rows of one server in one raw table (what
the latest syncs brought). Only counts and masked, truncated messages leave this module
(``fhir.operations.safe_message``): never a resource body.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .fhir.client import FhirClient
from .fhir.operations import Issue, severity_counts, top_messages, validate
from .warehouse import sql
from .warehouse.protocol import Warehouse

FAILING = ("fatal", "error")


@dataclass(frozen=True, slots=True)
class ValidationSummary:
    """What ``$validate`` said of a sample of one table."""

    resource_type: str
    sampled: int
    invalid: int
    issues: tuple[Issue, ...]
    profile: str | None

    @property
    def errors(self) -> int:
        """Issues of severity error or fatal."""
        return sum(1 for issue in self.issues if issue.severity in FAILING)

    def metadata(self) -> dict[str, Any]:
        """Counts by severity and the top messages (masked), for check metadata."""
        return {
            "sampled": self.sampled,
            "invalid_resources": self.invalid,
            **{f"issues_{k}": v for k, v in severity_counts(self.issues).items()},
            "top_messages": "\n".join(top_messages(self.issues)) or "none",
            "profile": self.profile or "none",
        }


def sample(warehouse: Warehouse, table: str, server: str, size: int) -> Iterator[dict[str, Any]]:
    """The ``size`` most recently updated current resources of ``server`` in ``fhir_raw.<table>``
    (none when the table does not exist)."""
    if size <= 0 or int(warehouse.fetch(sql.table_exists(table))[0][0]) == 0:
        return
    literal = warehouse.dialect.literal
    rows = warehouse.fetch(
        f"SELECT resource FROM {sql.qualified(table)} "  # noqa: S608 (checked name, literal)
        f"WHERE NOT deleted AND source_server = {literal(server)} "
        f"ORDER BY last_updated DESC, id LIMIT {int(size)}"
    )
    for (resource,) in rows:
        yield orjson.loads(resource) if isinstance(resource, str | bytes) else resource


def validate_sample(
    client: FhirClient,
    resource_type: str,
    resources: list[dict[str, Any]],
    profile: str | None = None,
) -> ValidationSummary:
    """``$validate`` every resource of the sample, one request each (through the client's
    rate limit); a server without ``$validate`` raises ``OperationNotSupportedError``."""
    issues: list[Issue] = []
    invalid = 0
    for resource in resources:
        found = validate(client, resource, profile)
        invalid += any(issue.severity in FAILING for issue in found)
        issues.extend(found)
    return ValidationSummary(resource_type, len(resources), invalid, tuple(issues), profile)
