"""Validation of outgoing resources before anything is sent.

Local: the fhir.resources R4B models (fhir.resources 8 has no R4 4.0.1 package; R4B shares R4's
structure for the resources written back here). They check structure and cardinality, not codes.
Remote (optional): the server's ``$validate`` operation, when its CapabilityStatement offers it.

Kept as two small functions so they can later be unified with the landing validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError

from ..fhir.client import FhirClient
from ..fhir.errors import outcome_issues


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None


def validate_resource(resource: Mapping[str, Any]) -> tuple[str, ...]:
    """The structural errors of ``resource`` against the R4B model; ``()`` when it is valid.

    Each error names the element path, e.g. ``Observation.code: Field required``. Values are
    never included (they can be PHI).
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or _model(resource_type) is None:
        return (f"resourceType {resource_type!r} is not a FHIR resource type",)
    try:
        _model(resource_type).model_validate(dict(resource))
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_input=False, include_url=False):
            path = ".".join(str(part) for part in error["loc"] if part != "__root__")
            errors.append(f"{resource_type}.{path}: {error['msg']}" if path else error["msg"])
        return tuple(errors)
    return ()


def offers_validate(capabilities: Mapping[str, Any], resource_type: str) -> bool:
    """Whether a CapabilityStatement lists ``$validate`` (system level or on the type)."""
    for rest in capabilities.get("rest") or ():
        names = [op.get("name") for op in rest.get("operation") or ()]
        for resource in rest.get("resource") or ():
            if resource.get("type") == resource_type:
                names += [op.get("name") for op in resource.get("operation") or ()]
        if "validate" in names:
            return True
    return False


def server_issues(client: FhirClient, resource: Mapping[str, Any]) -> tuple[str, ...]:
    """Errors ``POST [type]/$validate`` reports for ``resource`` (warnings are not errors)."""
    outcome = client.request(
        "POST",
        f"{resource['resourceType']}/$validate",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": resource}],
        },
        headers={"Content-Type": "application/fhir+json"},
    )
    return tuple(text for text in outcome_issues(outcome) if text.startswith(("error/", "fatal/")))
