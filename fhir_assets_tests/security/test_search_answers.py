"""What a real or hostile server may answer a search with: odd ``Retry-After`` values, an
OperationOutcome with HTTP 200, a Bundle that is not a searchset, malformed entries and links,
a ``$everything`` redirected elsewhere. Each waits within the cap, lands, or stops with a clear
error; nothing is landed as a match that was not sent as one."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest

from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.errors import FhirError, ResponseFormatError
from fhir_assets.fhir.http import RedirectError
from fhir_assets.fhir.operations import everything_pages
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets_tests.scripted_server import Reply, scripted_server
from fhir_assets_tests.security.evil import evil_dns, evil_servers, json_route, redirect

__all__ = ["evil_dns"]

PATIENT = {"resourceType": "Patient", "id": "p1"}
SEARCHSET = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": PATIENT}]}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "too-costly", "diagnostics": "narrow the search"}],
}


def search(body: Any, sleeps: list[float] | None = None, **reply: Any) -> list[dict[str, Any]]:
    """Search ``Patient`` on a server answering ``body`` (after one busy answer if ``reply``)."""
    count = itertools.count()

    def script(method: str, path: str) -> Reply:
        if reply and next(count) == 0:
            return Reply(**reply)
        return Reply(body=body)

    policy = RetryPolicy(
        attempts=1, max_backoff_s=60.0, sleep=(sleeps if sleeps is not None else []).append
    )
    with scripted_server(script) as (base, _seen), FhirClient(base, retry=policy) as client:
        return list(client.search("Patient"))


@pytest.mark.parametrize(
    ("value", "waited"),
    [
        ("\u00b2", None),  # a digit to str.isdigit(), not to float(): main crashed here
        ("1000000000", 60.0),  # a huge number (or an epoch time): capped
        ("-5", None),  # not delay-seconds: the policy's backoff
        ("soon", None),
        ("Wed, 21 Oct 2099 07:28:00 GMT", 60.0),  # a date decades ahead: capped
    ],
)
def test_a_busy_answer_with_an_odd_retry_after_waits_within_the_cap(
    value: str, waited: float | None
) -> None:
    sleeps: list[float] = []
    found = search(SEARCHSET, sleeps, status=503, headers={"Retry-After": value})
    assert found == [PATIENT]
    (wait,) = sleeps
    assert wait == waited if waited is not None else 0 <= wait <= 2  # backoff, with jitter


def test_an_operation_outcome_with_200_is_a_clear_error_with_its_issues() -> None:
    with pytest.raises(ResponseFormatError, match="not a Bundle: error/too-costly: narrow") as e:
        search(OUTCOME)
    assert e.value.issues == ("error/too-costly: narrow the search",)


@pytest.mark.parametrize("kind", ["history", "collection", "transaction-response"])
def test_a_bundle_of_another_type_is_refused_not_landed(kind: str) -> None:
    deleted = {"request": {"method": "DELETE", "url": "Patient/p2"}}
    with pytest.raises(ResponseFormatError, match=f"type '{kind}', not a searchset"):
        search(SEARCHSET | {"type": kind, "entry": [{"resource": PATIENT}, deleted]})


def test_a_bundle_without_a_type_still_lands() -> None:
    # valid-but-unusual: some servers leave Bundle.type out of a search answer
    assert search({k: v for k, v in SEARCHSET.items() if k != "type"}) == [PATIENT]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"entry": ["Patient/p1"]}, "entry is not a list of objects"),
        ({"entry": {"resource": PATIENT}}, "entry is not a list of objects"),
        ({"link": [5]}, "link is not a list of objects"),
        ({"link": [{"relation": "next", "url": 5}]}, "url is 5, not a URL"),
    ],
)
def test_malformed_entries_and_links_are_format_errors(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ResponseFormatError, match=match):
        search(SEARCHSET | change)


def test_a_match_entry_without_a_resource_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = SEARCHSET | {"entry": [{"resource": PATIENT}, {"fullUrl": "urn:uuid:x"}]}
    with caplog.at_level(logging.WARNING):
        assert search(body) == [PATIENT]
    assert "1 match entries carry no resource" in caplog.text


@pytest.mark.usefixtures("evil_dns")
def test_everything_redirected_to_another_origin_lands_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FHIR_ALLOW_INSECURE_HTTP", "1")  # evil.test is plain http, not loopback
    with evil_servers(2) as (fhir, other):
        other.route("/", json_route(SEARCHSET))
        fhir.route("/fhir/Patient/p1/$everything", redirect(307, f"{other.url}/x"))
        with FhirClient(f"{fhir.url}/fhir", retry=RetryPolicy(attempts=0)) as client:
            with pytest.raises(RedirectError, match="another origin"):
                list(everything_pages(client, "p1"))
        assert not other.seen


def test_a_failing_search_is_a_fhir_error() -> None:
    # whatever the shape, the caller sees the library's own error tree, never AttributeError
    with pytest.raises(FhirError):
        search({"resourceType": "Bundle", "type": "searchset", "entry": [None]})


def test_a_huge_operation_outcome_is_cut_in_the_message_and_whole_in_issues() -> None:
    issue = {"severity": "error", "code": "invalid", "diagnostics": "d" * 1_000_000}
    outcome = {"resourceType": "OperationOutcome", "issue": [issue] * 3}
    with scripted_server(lambda m, p: Reply(400, outcome)) as (base, _seen):
        with FhirClient(base) as client, pytest.raises(FhirError) as raised:
            list(client.search("Patient"))
    assert len(str(raised.value)) < 1200
    assert [len(text) for text in raised.value.issues] == [len("error/invalid: ") + 1_000_000] * 3  # type: ignore[attr-defined]
