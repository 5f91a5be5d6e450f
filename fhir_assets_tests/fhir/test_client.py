"""FhirClient against the real sandbox and against scripted servers for failure shapes."""

from __future__ import annotations

import pytest

from fhir_assets.fhir import (
    FhirClient,
    PagingError,
    RequestError,
    ResponseFormatError,
    RetryPolicy,
    TransientRequestError,
)
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.scripted_server import Reply, scripted_server

NO_RETRY = RetryPolicy(attempts=0)


def bundle(entries: list[dict], next_url: str | None = None) -> dict:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries, "link": links}


@pytest.mark.parametrize("page_size", [7, 500])
def test_search_follows_next_links_and_returns_every_resource(
    sandbox: Sandbox, page_size: int
) -> None:
    expected = sandbox.counts(["Encounter"])["Encounter"]
    with sandbox.fhir_client() as client:
        pages = list(client.search_pages("Encounter", {"_count": page_size}))
    ids = [r["id"] for page in pages for r in page.resources]
    assert len(ids) == expected > 0
    assert len(set(ids)) == len(ids)
    assert len(pages) == -(-expected // page_size)
    assert all(r["resourceType"] == "Encounter" for page in pages for r in page.resources)


def test_search_excludes_included_resources_from_matches(sandbox: Sandbox) -> None:
    expected = sandbox.counts(["Encounter"])["Encounter"]
    with sandbox.fhir_client() as client:
        found = list(client.search("Encounter", {"_include": "Encounter:subject", "_count": 50}))
    assert len(found) == expected
    assert {r["resourceType"] for r in found} == {"Encounter"}


def test_search_stops_on_a_repeating_next_link() -> None:
    def script(method: str, path: str) -> Reply:
        return Reply(body=bundle([{"resource": {"resourceType": "Patient", "id": "p"}}], nxt))

    with scripted_server(script) as (base, seen):
        nxt = f"{base}/Patient?page=2"
        client = FhirClient(base, retry=NO_RETRY)
        with pytest.raises(PagingError, match="repeated a next link"):
            list(client.search("Patient"))
    assert len(seen) == 2


def test_html_error_page_with_200_is_a_format_error() -> None:
    page = b"<html><body>Service maintenance</body></html>"
    with scripted_server(lambda m, p: Reply(body=page, content_type="text/html")) as (base, _):
        with pytest.raises(ResponseFormatError, match="text/html"):
            FhirClient(base, retry=NO_RETRY).get("Patient")


def test_operation_outcome_diagnostics_reach_the_error_without_query_string() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Unknown param foo"}],
    }
    with scripted_server(lambda m, p: Reply(400, outcome)) as (base, _):
        with pytest.raises(RequestError) as caught:
            FhirClient(base, retry=NO_RETRY).get("Patient", {"identifier": "MRN|123"})
    error = caught.value
    assert error.status == 400
    assert error.issues == ("error/invalid: Unknown param foo",)
    assert "Unknown param foo" in str(error)
    assert "MRN" not in str(error) and "123" not in str(error)
    assert not isinstance(error, TransientRequestError)


def test_transient_statuses_are_retried_then_succeed() -> None:
    replies = iter([Reply(503), Reply(429, headers={"Retry-After": "0"}), Reply(body=bundle([]))])
    with scripted_server(lambda m, p: next(replies)) as (base, seen):
        client = FhirClient(base, retry=RetryPolicy(attempts=3, backoff_s=0.01))
        assert client.get("Patient")["resourceType"] == "Bundle"
    assert len(seen) == 3


def test_transient_status_after_retries_is_a_transient_error() -> None:
    with scripted_server(lambda m, p: Reply(503)) as (base, seen):
        client = FhirClient(base, retry=RetryPolicy(attempts=2, backoff_s=0.01))
        with pytest.raises(TransientRequestError) as caught:
            client.get("Patient")
    assert caught.value.status == 503
    assert len(seen) == 3
