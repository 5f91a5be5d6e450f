"""Helpers for bulk export tests against the sandbox, directly or through the fault proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from fhir_assets.fhir import (
    BearerAuth,
    ClientCredentialsTokenSource,
    FhirClient,
    RetryPolicy,
    Token,
    TokenSource,
    load_private_key,
)
from fhir_assets.fhir.bulk import BulkClient, BulkOptions
from fhir_assets.sandbox import Sandbox

# sekmet: polling needs a wildcard scope, and DELETE of a job needs more than read.
SCOPE = "system/*.*"


def token_source(sandbox: Sandbox) -> ClientCredentialsTokenSource:
    return ClientCredentialsTokenSource(
        token_url=sandbox.token_url,
        client_id=sandbox.client.client_id,
        private_key=load_private_key(sandbox.client.private_key_path),
        scope=SCOPE,
    )


class TrustingTokens(TokenSource):
    """Keeps a token until the server refuses it (a client whose clock or margin is off), so a
    short token lifetime really expires between and during downloads."""

    def __init__(self, inner: ClientCredentialsTokenSource) -> None:
        super().__init__()
        self.inner = inner
        self.fetched = 0

    def token(self, *, force_refresh: bool = False, stale: str | None = None) -> Token:
        with self._lock:
            cached = self._token
            if cached is None or force_refresh or stale == cached.access_token:
                self._token = self.inner._fetch()
                self.fetched += 1
            return self._token


def bulk_client(
    sandbox: Sandbox, url: str | None = None, tokens: TokenSource | None = None, **options: Any
) -> BulkClient:
    """A BulkClient for the sandbox (or a proxy in front of it at ``url``); waits are real but
    capped at one second."""
    url = url or sandbox.base_url
    auth = BearerAuth(tokens or token_source(sandbox), url)
    client = FhirClient(url, auth=auth, retry=RetryPolicy(attempts=0), timeout=30)
    options = {"max_wait_s": 1.0, "default_wait_s": 0.2} | options
    return BulkClient(client, BulkOptions(**options), sleep=time.sleep)


def read_export(files: list[tuple[str, Path]]) -> Iterator[dict[str, Any]]:
    for _, path in files:
        with path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


def by_key(resources: Iterator[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Resources keyed by (type, id); fails on a duplicate."""
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in resources:
        key = (resource["resourceType"], resource["id"])
        assert key not in keyed, f"duplicate {key}"
        keyed[key] = resource
    return keyed


def searched(sandbox: Sandbox, types: list[str], params: dict[str, str] | None = None) -> dict:
    """What a search of each type returns, keyed like :func:`by_key`."""
    with sandbox.fhir_client() as client:
        return by_key(
            r for t in types for r in client.search(t, {"_count": "500", **(params or {})})
        )
