"""The operation calls against scripted servers: what no sandbox can be made to answer on demand
(no $everything, endless pages, a foreign next link, diagnostics that echo a value)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_assets.fhir.client import FhirClient, ForeignLinkError
from fhir_assets.fhir.errors import PagingError, RequestError
from fhir_assets.fhir.operations import (
    OperationLimits,
    OperationNotSupportedError,
    everything_pages,
    extract,
    safe_message,
    validate,
)
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets_tests.scripted_server import Reply, scripted_server

NO_RETRY = RetryPolicy(attempts=1)
NOT_SUPPORTED = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "not-supported",
            "diagnostics": "Operation $everything is not supported",
        }
    ],
}


def page(next_url: str | None, n: int = 1) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    entries = [
        {"resource": {"resourceType": "Observation", "id": f"o{n}"}, "search": {"mode": "include"}}
    ]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


@pytest.mark.parametrize("status", [404, 400, 501])
def test_everything_unsupported_names_the_servers_answer(status: int) -> None:
    with scripted_server(lambda m, p: Reply(status, NOT_SUPPORTED)) as (base, _):
        client = FhirClient(base, retry=NO_RETRY)
        with pytest.raises(OperationNotSupportedError) as caught:
            list(everything_pages(client, "p1"))
    message = str(caught.value)
    assert "does not support Patient/$everything" in message
    assert f"HTTP {status}" in message and "Operation $everything is not supported" in message


def test_everything_of_a_missing_patient_is_not_called_unsupported() -> None:
    missing = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "gone"}],
    }
    with scripted_server(lambda m, p: Reply(404, missing)) as (base, _):
        with pytest.raises(RequestError) as caught:
            list(everything_pages(FhirClient(base, retry=NO_RETRY), "p1"))
    assert not isinstance(caught.value, OperationNotSupportedError)


def test_everything_keeps_include_entries_and_stops_at_the_page_bound() -> None:
    calls: list[str] = []

    def script(method: str, path: str) -> Reply:
        calls.append(path)
        return Reply(body=page(f"{base}/page?n={len(calls) + 1}", len(calls)))

    with scripted_server(script) as (base, _):
        client = FhirClient(base, retry=NO_RETRY)
        pages = everything_pages(client, "p1", limits=OperationLimits(max_pages=3))
        got: list[str] = []
        with pytest.raises(PagingError, match="FHIR_OPERATION_MAX_PAGES"):
            for resources in pages:
                got.extend(resource["id"] for resource in resources)
    assert len(calls) == 3 and got == ["o1", "o2", "o3"]  # include-mode entries kept


def test_everything_stops_at_the_deadline() -> None:
    ticks = iter(range(0, 10_000, 100))
    limits = OperationLimits(deadline_s=150, clock=lambda: next(ticks))
    with scripted_server(lambda m, p: Reply(body=page(f"{base}/next?{p[-3:]}1"))) as (base, _):
        with pytest.raises(PagingError, match="FHIR_OPERATION_DEADLINE_S"):
            list(everything_pages(FhirClient(base, retry=NO_RETRY), "p1", limits=limits))


def test_everything_refuses_a_next_link_to_another_origin() -> None:
    with scripted_server(lambda m, p: Reply(body=page("https://evil.example/fhir/p2"))) as (
        base,
        _,
    ):
        with pytest.raises(ForeignLinkError):
            list(everything_pages(FhirClient(base, retry=NO_RETRY), "p1"))


def test_validate_masks_quoted_values_and_cuts_long_diagnostics() -> None:
    echo = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "value",
                "expression": ["Patient.name[0].family"],
                "diagnostics": "value 'Zebediah' is not allowed " + "x" * 300,
            },
        ],
    }
    with scripted_server(lambda m, p: Reply(body=echo)) as (base, seen):
        [issue] = validate(FhirClient(base, retry=NO_RETRY), {"resourceType": "Patient"}, "urn:p")
    assert seen[0].method == "POST" and seen[0].path.endswith("/Patient/$validate")
    assert issue.severity == "error" and "Zebediah" not in issue.message
    assert issue.message.startswith("value at Patient.name[0].family: value '…'")
    assert len(issue.message) <= 120


def test_validate_reads_an_outcome_sent_with_422() -> None:
    bad = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad 'Ann'"}],
    }
    with scripted_server(lambda m, p: Reply(422, bad)) as (base, _):
        [issue] = validate(FhirClient(base, retry=NO_RETRY), {"resourceType": "Patient"})
    assert (issue.severity, issue.code) == ("error", "invalid") and "Ann" not in issue.message


def test_extract_falls_back_to_post_when_get_is_refused() -> None:
    result = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Observation"}}],
    }

    def script(method: str, path: str) -> Reply:
        return Reply(405, {}) if method == "GET" else Reply(body=result)

    with scripted_server(script) as (base, seen):
        found = extract(FhirClient(base, retry=NO_RETRY), "qr1")
    assert [s.method for s in seen] == ["GET", "POST"] and found == [
        {"resourceType": "Observation"}
    ]


def test_safe_message_without_expression() -> None:
    assert (
        safe_message({"code": "invalid", "diagnostics": 'name "Ann" bad'})
        == "invalid: name '…' bad"
    )


def test_everything_entry_of_no_r4_type_is_quarantined_not_dropped(tmp_path: Path) -> None:
    from fhir_assets.cohort import fetch_everything, land_everything
    from fhir_assets.warehouse.protocol import Provenance
    from fhir_assets.warehouse.resources import DuckDBWarehouseResource

    body = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1"}},
        {"resource": {"resourceType": "../../etc", "id": "x"}},
    ]}  # fmt: skip
    with scripted_server(lambda m, p: Reply(body=body)) as (base, _):
        spool = tmp_path / "spool"
        spool.mkdir()
        fetched = fetch_everything(FhirClient(base, retry=NO_RETRY), ["p1"], spool)
    landing = DuckDBWarehouseResource(database=str(tmp_path / "wh" / "w.duckdb"))
    with landing.open_warehouse() as warehouse:
        [result] = land_everything(warehouse, fetched, Provenance.now(base, "t"))
        [(reason,)] = warehouse.fetch("SELECT error FROM fhir_raw._quarantine")
    assert (result.resource_type, result.landed, result.quarantined) == ("Patient", 1, 1)
    assert "../../etc" in reason
    assert sorted(p.name for p in spool.iterdir()) == ["Patient"]
