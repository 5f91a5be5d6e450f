"""The token goes only to the FHIR server's origin: never to a ``next`` link or a redirect target
on another host or port. Two real servers on 127.0.0.1, different ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_assets.fhir import ServerSettings, connect
from fhir_assets.fhir.client import FhirClient, ForeignLinkError

from .http_server import HttpServer, Received, Response, json_response
from .oauth_server import OAuthServer

SECRET = "origin-test-secret-0123456789"


def bundle(resources: list[dict[str, str]], next_url: str | None = None) -> dict[str, object]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


@pytest.fixture
def servers() -> Iterator[tuple[OAuthServer, HttpServer]]:
    with OAuthServer() as fhir, HttpServer() as foreign:
        fhir.add_client("svc", secret=SECRET, scope="system/Patient.rs system/Binary.rs")
        yield fhir, foreign


@pytest.fixture
def client(servers: tuple[OAuthServer, HttpServer]) -> Iterator[FhirClient]:
    fhir, _ = servers
    settings = ServerSettings(
        fhir.base_url,
        client_id="svc",
        client_secret=SECRET,
        scopes="system/Patient.rs system/Binary.rs",
        token_url=f"{fhir.url}/token",
    )
    with connect(settings) as client:
        yield client


def protected(fhir: OAuthServer, answer: Response) -> object:
    def route(received: Received) -> Response:
        if not fhir.valid_bearer(received):
            return json_response(401, {"resourceType": "OperationOutcome", "issue": []})
        return answer

    return route


def assert_no_token(server: HttpServer) -> None:
    assert server.received, "the other server was never asked"
    assert all("authorization" not in r.headers for r in server.received)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_next_link_to_another_origin_is_refused_before_asking_it(
    servers: tuple[OAuthServer, HttpServer], client: FhirClient, host: str
) -> None:
    fhir, foreign = servers
    port = foreign.url.rsplit(":", 1)[1]
    next_url = f"http://{host}:{port}/fhir/Patient?page=2"
    fhir.routes["/fhir/Patient"] = protected(
        fhir, json_response(200, bundle([{"resourceType": "Patient", "id": "a"}], next_url))
    )
    foreign.routes["/fhir/Patient"] = lambda r: json_response(
        200, bundle([{"resourceType": "Patient", "id": "b"}])
    )

    # Issue 12: a server paging across origins is misconfigured or hostile; its pages are not
    # landed as this server's data, and the error names both origins.
    with pytest.raises(ForeignLinkError) as raised:
        list(client.search("Patient"))

    assert f"{host}:{port}" in str(raised.value)
    assert fhir.url.split("//")[1].split("/")[0] in str(raised.value)
    assert fhir.received[-1].headers["authorization"].startswith("Bearer ")
    assert not foreign.received


def test_307_to_another_origin_is_followed_without_the_token(
    servers: tuple[OAuthServer, HttpServer], client: FhirClient
) -> None:
    # Oracle Health (Cerner) answers downloads with 307 to storage on another host
    fhir, foreign = servers
    location = f"{foreign.url}/storage/file.ndjson?sig=abc"
    fhir.routes["/fhir/Binary/x"] = protected(fhir, (307, {"Location": location}, b""))
    foreign.routes["/storage/file.ndjson"] = lambda r: json_response(200, {"downloaded": True})

    assert client.get("Binary/x") == {"downloaded": True}
    assert_no_token(foreign)


def test_307_within_the_same_origin_keeps_the_token(
    servers: tuple[OAuthServer, HttpServer], client: FhirClient
) -> None:
    fhir, _ = servers
    fhir.routes["/fhir/Binary/old"] = protected(fhir, (307, {"Location": "/fhir/Binary/new"}, b""))
    fhir.routes["/fhir/Binary/new"] = protected(fhir, json_response(200, {"moved": True}))

    assert client.get("Binary/old") == {"moved": True}
    assert fhir.received[-1].path == "/fhir/Binary/new"
    assert fhir.received[-1].headers["authorization"].startswith("Bearer ")


def test_401_from_another_origin_does_not_fetch_or_send_a_token(
    servers: tuple[OAuthServer, HttpServer], client: FhirClient
) -> None:
    fhir, foreign = servers
    foreign.routes["/elsewhere"] = lambda r: json_response(401, {"error": "login"})
    response = client.session.get(f"{foreign.url}/elsewhere")
    assert response.status_code == 401 and response.history == []
    assert_no_token(foreign)
    assert not any(r.path == "/token" for r in fhir.received)
