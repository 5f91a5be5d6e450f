"""Fixtures for sync tests: clients that reach the sandbox through the fault-injecting proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fhir_assets.fhir import BearerAuth, ClientCredentialsTokenSource, FhirClient, load_private_key
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.proxy import FaultProxy

ClientFactory = Callable[..., FhirClient]


def client_via(sandbox: Sandbox, base_url: str, **kwargs: Any) -> FhirClient:
    """A client of ``base_url`` (the proxy) holding the sandbox demo client's tokens."""
    tokens = ClientCredentialsTokenSource(
        token_url=sandbox.token_url,
        client_id=sandbox.client.client_id,
        private_key=load_private_key(sandbox.client.private_key_path),
        scope="system/*.*",
    )
    return FhirClient(base_url, auth=BearerAuth(tokens, base_url), **kwargs)


@pytest.fixture
def proxy(sandbox: Sandbox) -> Iterator[FaultProxy]:
    """A fault proxy in front of the shared read-only sandbox."""
    with FaultProxy(sandbox.base_url, seed=20) as running:
        yield running


@pytest.fixture
def proxied_client(sandbox: Sandbox, proxy: FaultProxy) -> Iterator[ClientFactory]:
    """Build clients that go through ``proxy``; closed after the test."""
    made: list[FhirClient] = []

    def build(**kwargs: Any) -> FhirClient:
        made.append(client_via(sandbox, proxy.url, **kwargs))
        return made[-1]

    yield build
    for client in made:
        client.close()
