"""Fixtures for the SMART auth tests: client keys and a sandbox that knows every kind of client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fhir_assets.fhir.keys import (
    generate_private_key,
    load_private_key,
    public_jwks,
    write_private_key,
)
from fhir_assets.sandbox import Sandbox

from .http_server import HttpServer, json_response

SECRET = "client-secret-value-0123456789abcdef"


@dataclass(frozen=True)
class Clients:
    """The client ids and key paths registered with :func:`smart_sandbox`."""

    rs384: Path
    es384: Path
    jwks_url: Path
    other: Path  # a key registered nowhere
    secret: str = SECRET


def smart_clients(keys: Clients, jwks_url: str) -> list[dict[str, object]]:
    """sekmet ``smart_clients`` entries for every kind of client the tests use."""

    def jwks(path: Path) -> dict[str, object]:
        return public_jwks(load_private_key(path))

    return [
        {"client_id": "rs384-client", "jwks": jwks(keys.rs384), "scopes": "system/*.read"},
        {"client_id": "es384-client", "jwks": jwks(keys.es384), "scopes": "system/*.read"},
        {"client_id": "jwks-url-client", "jwks_url": jwks_url, "scopes": "system/*.read"},
        {"client_id": "secret-client", "client_secret": SECRET, "scopes": "system/*.read"},
        {"client_id": "patient-only", "jwks": jwks(keys.rs384), "scopes": "system/Patient.read"},
    ]


@pytest.fixture(scope="module")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> Clients:
    folder = tmp_path_factory.mktemp("keys")
    paths = {}
    for name, alg in [
        ("rs384", "RS384"),
        ("es384", "ES384"),
        ("jwks_url", "ES384"),
        ("other", "RS384"),
    ]:
        paths[name] = folder / f"{name}.pem"
        write_private_key(generate_private_key(alg), paths[name])
    return Clients(**paths)


@pytest.fixture(scope="module")
def jwks_server(client_keys: Clients) -> Iterator[HttpServer]:
    """Publishes the jwks-url client's public JWKS, as a client's own web server would."""
    document = (client_keys.jwks_url.parent / "jwks_url.pem.jwks.json").read_text()
    body = json.loads(document)
    with HttpServer({"/jwks.json": lambda r: json_response(200, body)}) as server:
        yield server


@pytest.fixture(scope="module")
def smart_sandbox(
    sandbox_home: Path, client_keys: Clients, jwks_server: HttpServer
) -> Iterator[Sandbox]:
    """A sandbox of this module's own with every test client registered (read-only use)."""
    clients = smart_clients(client_keys, f"{jwks_server.url}/jwks.json")
    with Sandbox(home=sandbox_home, extra_clients=clients) as server:
        yield server
