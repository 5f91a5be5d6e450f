"""Fixtures for write-back tests: a fresh sandbox per test (they write), audit in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fhir_assets.fhir import FhirClient
from fhir_assets.sandbox import Sandbox
from fhir_assets.writeback import DuckDBAuditWriter, WritePolicy, Writer

SYSTEM = "urn:fhir-assets:test:score"


def score(patient_id: str, value: int, **extra: Any) -> dict[str, Any]:
    """A small valid Observation for ``patient_id`` carrying the test business identifier."""
    return {
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": patient_id}],
        "status": "final",
        "code": {"text": "test score"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueInteger": value,
        **extra,
    }


def by_identifier(client: FhirClient, patient_id: str) -> list[dict[str, Any]]:
    """Every Observation on the server carrying the test identifier for ``patient_id``."""
    return list(client.search("Observation", {"identifier": f"{SYSTEM}|{patient_id}"}))


def count_scores(client: FhirClient) -> int:
    """How many Observations carry the test identifier system."""
    return int(
        client.get("Observation", {"identifier": f"{SYSTEM}|", "_summary": "count"})["total"]
    )


@pytest.fixture
def server(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A fresh sandbox of this test's own."""
    return make_sandbox()


@pytest.fixture
def client(server: Sandbox) -> Iterator[FhirClient]:
    with server.fhir_client() as fhir:
        yield fhir


@pytest.fixture
def patients(client: FhirClient) -> list[str]:
    """Ids of a few seeded patients."""
    return [p["id"] for p in client.search("Patient", {"_count": 5})][:5]


@pytest.fixture
def audit_db(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(tmp_path / "audit.duckdb")) as con:
        yield con


@pytest.fixture
def make_writer(client: FhirClient, audit_db: duckdb.DuckDBPyConnection) -> Callable[..., Writer]:
    """A Writer on the fresh sandbox; keyword arguments override WritePolicy fields."""

    def build(run_id: str = "run-1", fhir: FhirClient | None = None, **policy: Any) -> Writer:
        return Writer(
            fhir or client,
            WritePolicy(identifier_system=SYSTEM, backoff_s=0, **policy),
            DuckDBAuditWriter(audit_db),
            run_id=run_id,
            sleep=lambda _: None,
        )

    return build


def after_each_request(client: FhirClient, call: Callable[[str, str, Any], None]) -> None:
    """Call ``call(method, url, params)`` after each request the client's session sends.

    A spy on the real session: the request goes to the server unchanged, and ``call`` sees the
    search parameters as the client passed them (before URL encoding).
    """
    original = client.session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = original(method, url, *args, **kwargs)
        call(method, url, kwargs.get("params"))
        return response

    client.session.request = request  # type: ignore[method-assign]


def audit_rows(con: duckdb.DuckDBPyConnection, columns: str = "*") -> list[tuple[Any, ...]]:
    """The audit table, in insertion order."""
    return con.execute(f"select {columns} from fhir_audit.writes").fetchall()  # noqa: S608
