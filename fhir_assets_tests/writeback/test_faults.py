"""Injected 5xx, dropped connections and cut responses during writes (through FaultProxy).

Whatever fails, the final server state must equal the intended state, with no duplicates: the
writer re-reads by identifier after every failure instead of blindly resending.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from fhir_assets.fhir import BearerAuth, ClientCredentialsTokenSource, FhirClient, RetryPolicy
from fhir_assets.fhir.auth import load_private_key
from fhir_assets.sandbox import Sandbox
from fhir_assets.writeback import DuckDBAuditWriter, WritePolicy, Writer, summarize

from ..proxy import Fault, FaultProxy
from .conftest import SYSTEM, audit_rows, score


@pytest.fixture
def proxy(server: Sandbox) -> Iterator[FaultProxy]:
    with FaultProxy(server.base_url, seed=3) as running:
        yield running


@pytest.fixture
def proxied(server: Sandbox, proxy: FaultProxy) -> Iterator[FhirClient]:
    """A client that reaches the sandbox through the proxy (tokens come straight from it)."""
    tokens = ClientCredentialsTokenSource(
        token_url=server.token_url,
        client_id=server.client.client_id,
        private_key=load_private_key(server.client.private_key_path),
        scope="system/*.*",
    )
    retry = RetryPolicy(attempts=4, backoff_s=0.01, max_backoff_s=0.05)
    with FhirClient(proxy.url, auth=BearerAuth(tokens, proxy.url), retry=retry) as client:
        yield client


def writer(
    client: FhirClient,
    audit_db: duckdb.DuckDBPyConnection,
    run_id: str,
    waits: list[float] | None = None,
) -> Writer:
    # conflict policy "fail": a lost answer must never look like someone else's change
    policy = WritePolicy(SYSTEM, attempts=8, backoff_s=0.5, max_backoff_s=1.5, on_conflict="fail")
    sleep = (waits if waits is not None else []).append
    return Writer(client, policy, DuckDBAuditWriter(audit_db), run_id=run_id, sleep=sleep)


def server_state(client: FhirClient) -> dict[str, list[int]]:
    """identifier value -> the valueInteger of every Observation carrying it."""
    state: dict[str, list[int]] = {}
    for resource in client.search("Observation", {"identifier": f"{SYSTEM}|", "_count": 500}):
        [identifier] = resource["identifier"]
        state.setdefault(identifier["value"], []).append(resource["valueInteger"])
    return state


def posts(proxy: FaultProxy) -> list[int | None]:
    return [status for method, _, status in proxy.requests if method == "POST"]


@pytest.mark.parametrize(
    ("fault", "statuses", "waits"),
    [
        (Fault("status", status=503, method="POST", count=3), [503, 503, 503, 200], [0.5, 1, 1.5]),
        (Fault("drop", method="POST", count=1), [None, 200], [0.5]),
        # the server's Retry-After wins over the backoff, capped at max_backoff_s (1.5 here)
        (Fault("status", status=429, retry_after=1, method="POST", count=1), [429, 200], [1.0]),
        (Fault("status", status=503, retry_after=120, method="POST", count=1), [503, 200], [1.5]),
        (Fault("html", status=502, method="POST", count=1), [502, 200], [0.5]),
        # the transaction commits, but its answer is cut: the re-read finds it, nothing is resent
        (Fault("truncate", method="POST", count=1), [200], [0.5]),
    ],
)
def test_writes_survive_a_failed_transaction(
    fault: Fault,
    statuses: list[int | None],
    waits: list[float],
    client: FhirClient,
    proxied: FhirClient,
    proxy: FaultProxy,
    patients: list[str],
    audit_db: duckdb.DuckDBPyConnection,
) -> None:
    intended = {p: i for i, p in enumerate(patients)}
    proxy.add(fault)

    waited: list[float] = []
    resources = [score(p, v) for p, v in intended.items()]

    outcomes = writer(proxied, audit_db, "run-1", waited).write(resources)

    assert summarize(outcomes)["created"] == len(patients)
    assert server_state(client) == {p: [v] for p, v in intended.items()}
    assert posts(proxy) == statuses
    outcomes_audited = [r[0] for r in audit_rows(audit_db, "outcome")]
    assert outcomes_audited.count("transient") == len(waits) * len(patients)
    assert waited == waits  # Retry-After, else a backoff doubling; capped at max_backoff_s


def test_a_lost_answer_leaves_one_provenance(
    client: FhirClient,
    proxied: FhirClient,
    proxy: FaultProxy,
    patients: list[str],
    audit_db: duckdb.DuckDBPyConnection,
) -> None:
    proxy.add(Fault("truncate", method="POST", count=1))
    policy = WritePolicy(SYSTEM, backoff_s=0, provenance=True)
    writer = Writer(proxied, policy, DuckDBAuditWriter(audit_db), run_id="run-1")

    outcomes = writer.write([score(p, 1) for p in patients])

    assert summarize(outcomes)["created"] == len(patients)
    provenances = [
        p
        for p in client.search("Provenance", {"_count": 50})
        if "run-1" in p.get("activity", {}).get("text", "")  # not the sandbox's seeded ones
    ]
    assert len(provenances) == 1 and len(provenances[0]["target"]) == len(patients)


def test_submit_idempotent_resends_a_safe_bundle_after_a_5xx(
    client: FhirClient, proxied: FhirClient, proxy: FaultProxy, patients: list[str]
) -> None:
    from fhir_assets.fhir.write import BundleEntry, WriteClient

    proxy.add(Fault("status", status=502, method="POST", count=2))
    query = f"identifier={SYSTEM}|{patients[0]}"
    entry = BundleEntry.create(score(patients[0], 1), if_none_exist=query)
    retry = RetryPolicy(attempts=3, backoff_s=0)

    [outcome] = WriteClient(proxied, sleep=lambda _: None).submit_idempotent([entry], retry)

    assert outcome.status == 201
    assert posts(proxy) == [502, 502, 200]
    assert server_state(client) == {patients[0]: [1]}


def test_random_faults_leave_the_intended_state_without_duplicates(
    client: FhirClient,
    proxied: FhirClient,
    proxy: FaultProxy,
    patients: list[str],
    audit_db: duckdb.DuckDBPyConnection,
) -> None:
    for kind, status in (("status", 500), ("status", 503), ("drop", None), ("truncate", None)):
        proxy.add(Fault(kind, status=status, rate=0.12))

    for generation in range(4):  # creates first, then three rounds of updates
        intended = {p: 10 * generation + i for i, p in enumerate(patients)}
        for run in range(3):  # a re-run (the next materialization) finishes a given-up write
            outcomes = writer(proxied, audit_db, f"run-{generation}-{run}").write(
                [score(p, v) for p, v in intended.items()]
            )
            if not summarize(outcomes)["failed"]:
                break
        assert server_state(client) == {p: [v] for p, v in intended.items()}
        assert {o.outcome for o in outcomes} <= {"created", "updated", "unchanged"}

    # the seed makes the fault sequence reproducible: every kind hit at least once
    assert set(proxy.injected) == {"status", "drop", "truncate"}
