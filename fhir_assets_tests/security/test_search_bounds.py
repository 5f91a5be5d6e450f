"""Issue 23 finding 5 (search): ``next`` links with a fresh query string each time, pages that
repeat, and a search that never ends all stop with an error naming the bound."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.errors import PagingError
from fhir_assets.fhir.limits import Limits
from fhir_assets.fhir.retry import RetryPolicy
from fhir_assets_tests.scripted_server import Reply, scripted_server

NO_RETRY = RetryPolicy(attempts=0)


def page(base: str, ids: list[str], n: int, total: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Patient", "id": i}} for i in ids],
        "link": [{"relation": "next", "url": f"{base}/Patient?fresh={n}"}],
    }
    if total is not None:
        body["total"] = total
    return body


def endless(ids_of: Any, total: int | None) -> Any:
    counter = itertools.count()
    box: dict[str, str] = {}

    def script(method: str, path: str) -> Reply:
        n = next(counter)
        return Reply(body=page(box["base"], ids_of(n), n, total))

    return script, box


@pytest.mark.parametrize(
    ("ids_of", "total", "match", "most"),
    [
        (lambda n: ["p1"], 1, "repeats the resources", 2),  # the same page, fresh links
        (lambda n: [f"p{n % 2}"], None, "repeats the resources", 3),  # A, B, A, ...
        (lambda n: [f"p{n}"], 1, "Bundle.total said 1", 8),  # new ids, past the total
    ],
)
def test_search_with_fresh_next_links_stops(ids_of: Any, total: Any, match: str, most: int) -> None:
    script, box = endless(ids_of, total)
    with scripted_server(script) as (base, seen):
        box["base"] = base
        with FhirClient(base, retry=NO_RETRY) as client, pytest.raises(PagingError, match=match):
            list(client.search("Patient"))
    assert len(seen) <= most


def test_search_stops_at_max_pages_without_a_total() -> None:
    script, box = endless(lambda n: [f"p{n}"], None)
    with scripted_server(script) as (base, seen):
        box["base"] = base
        client = FhirClient(base, retry=NO_RETRY, limits=Limits(max_pages=20))
        with client, pytest.raises(PagingError, match="FHIR_MAX_PAGES_PER_SEARCH=20"):
            list(client.search("Patient"))
    assert len(seen) == 21


def test_search_window_deadline() -> None:
    clock = itertools.count(0, 10)  # every page takes "10 s"
    script, box = endless(lambda n: [f"p{n}"], None)
    with scripted_server(script) as (base, seen):
        box["base"] = base
        limits = Limits(search_deadline_s=100)
        client = FhirClient(base, retry=NO_RETRY, limits=limits, now=lambda: next(clock))
        with client, pytest.raises(PagingError, match="FHIR_SEARCH_DEADLINE_S"):
            list(client.search("Patient"))
    assert len(seen) <= 12


def test_search_with_a_drifting_total_still_lands_everything() -> None:
    # valid but unusual: small pages, a total that grows while paging, no repeats
    pages = [["a", "b"], ["c", "d"], ["e"]]

    def script(method: str, path: str) -> Reply:
        n = int(path.rsplit("=", 1)[1]) if "fresh=" in path else 0
        body = page(box["base"], pages[n], n + 1, 3 + n)
        if n == len(pages) - 1:
            body["link"] = []
        return Reply(body=body)

    box: dict[str, str] = {}
    with scripted_server(script) as (base, _):
        box["base"] = base
        with FhirClient(base, retry=NO_RETRY) as client:
            found = [r["id"] for r in client.search("Patient")]
    assert found == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("total", [-1, 0, True, 2.5])
def test_a_total_that_is_no_count_does_not_cut_a_search_short(total: Any) -> None:
    # valid paging under a Bundle.total that is no count ("unknown" -1, 0 beside matches): the
    # search is bounded by FHIR_MAX_PAGES_PER_SEARCH and repeats instead, and lands whole
    pages = itertools.count()
    box: dict[str, str] = {}

    def script(method: str, path: str) -> Reply:
        n = next(pages)
        body = page(box["base"], [f"p{n}"], n, None) | {"total": total}
        return Reply(body=body if n < 9 else body | {"link": []})

    with scripted_server(script) as (base, _seen):
        box["base"] = base
        with FhirClient(base, retry=NO_RETRY) as client:
            assert len(list(client.search("Patient"))) == 10


def test_next_links_cycling_between_two_urls_stop_even_with_fresh_resources() -> None:
    # A -> B -> A -> ... with new ids on every page: the repeated link stops it (passes on main;
    # no other test cycles two links while the ids change)
    pages = itertools.count()
    box: dict[str, str] = {}

    def script(method: str, path: str) -> Reply:
        n = next(pages)
        url = box["base"] + ("/Patient?b" if n % 2 else "/Patient?a")
        body = page(box["base"], [f"p{n}"], n, None)
        return Reply(body=body | {"link": [{"relation": "next", "url": url}]})

    with scripted_server(script) as (base, seen):
        box["base"] = base
        with FhirClient(base, retry=NO_RETRY) as client:
            with pytest.raises(PagingError, match="repeated a next link"):
                list(client.search("Patient"))
    assert len(seen) <= 3
