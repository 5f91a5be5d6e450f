"""A writer killed with SIGKILL between sending a transaction and hearing its answer: the attempt
was audited before it went out, and the next run settles it with what the server holds.

The sandbox sits behind the fault proxy, which holds the transaction for a few seconds: long
enough to kill the writer while its request is in flight, even on a loaded machine. Then the
proxy either forwards it (the write commits with nobody left to audit it) or refuses it (nothing
was written).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from fhir_assets.fhir import BearerAuth, ClientCredentialsTokenSource, FhirClient
from fhir_assets.fhir.auth import load_private_key
from fhir_assets.sandbox import Sandbox
from fhir_assets.writeback import DuckDBAuditWriter, WritePolicy, Writer

from ..proxy import Fault, FaultProxy
from .conftest import SYSTEM, by_identifier

WRITER = """
import os, duckdb
from fhir_assets.fhir import BearerAuth, ClientCredentialsTokenSource, FhirClient
from fhir_assets.fhir.auth import load_private_key
from fhir_assets.writeback import DuckDBAuditWriter, WritePolicy, Writer
from fhir_assets_tests.writeback.conftest import SYSTEM, score

env = os.environ
tokens = ClientCredentialsTokenSource(
    token_url=env["T_TOKEN_URL"], client_id=env["T_CLIENT_ID"],
    private_key=load_private_key(env["T_KEY"]), scope="system/*.*")
client = FhirClient(env["T_URL"], auth=BearerAuth(tokens, env["T_URL"]))
with duckdb.connect(env["T_AUDIT"]) as con:
    Writer(client, WritePolicy(SYSTEM), DuckDBAuditWriter(con), run_id="killed").write(
        [score(env["T_PATIENT"], 5)])
"""


@pytest.fixture
def proxy(server: Sandbox) -> Iterator[FaultProxy]:
    with FaultProxy(server.base_url, seed=1) as running:
        yield running


def kill_in_flight(server: Sandbox, proxy: FaultProxy, fault: Fault, audit: Path, patient: str):
    env = os.environ | {
        "T_URL": proxy.url, "T_TOKEN_URL": server.token_url, "T_AUDIT": str(audit),
        "T_CLIENT_ID": server.client.client_id, "T_KEY": str(server.client.private_key_path),
        "T_PATIENT": patient, "PYTHONPATH": str(Path(__file__).parents[2]),
    }  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", WRITER], env=env)
    deadline = time.monotonic() + 60
    while not fault.matched and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fault.matched == 1, "the transaction never reached the proxy"
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL


def wait_settled(proxy: FaultProxy) -> None:
    """Until the proxy has answered the held transaction (after the upstream committed it, or
    with its refusal): it records the answer before sending it. No fixed sleep: on a loaded
    machine forwarding it can take seconds."""
    deadline = time.monotonic() + 120
    while not any(method == "POST" for method, _, _ in proxy.requests):
        assert time.monotonic() < deadline, "the proxy never answered the held transaction"
        time.sleep(0.05)


def proxied(server: Sandbox, proxy: FaultProxy) -> FhirClient:
    """The same server as the killed writer saw it (audit rows are per server URL)."""
    tokens = ClientCredentialsTokenSource(
        token_url=server.token_url,
        client_id=server.client.client_id,
        private_key=load_private_key(server.client.private_key_path),
        scope="system/*.*",
    )
    return FhirClient(proxy.url, auth=BearerAuth(tokens, proxy.url))


@pytest.mark.parametrize("forwarded", [True, False])
def test_an_attempt_whose_writer_was_killed_is_settled_on_the_next_run(
    server: Sandbox,
    client: FhirClient,
    proxy: FaultProxy,
    patients: list[str],
    tmp_path: Path,
    forwarded: bool,
) -> None:
    audit = tmp_path / "audit.duckdb"
    kind = {"kind": "slow"} if forwarded else {"kind": "status", "status": 503}
    # held 5 s: the kill must land before the writer can hear the answer and audit it
    fault = proxy.add(Fault(**kind, delay_s=5.0, method="POST", count=1))
    kill_in_flight(server, proxy, fault, audit, patients[0])
    wait_settled(proxy)
    stored = by_identifier(client, patients[0])
    assert len(stored) == (1 if forwarded else 0)

    with duckdb.connect(str(audit)) as con, proxied(server, proxy) as again:
        Writer(again, WritePolicy(SYSTEM), DuckDBAuditWriter(con), run_id="next").write([])
        rows = con.execute(
            "select run_id, transaction_id, interaction, outcome, resource_id, version_id "
            "from fhir_audit.writes order by recorded_at"
        ).fetchall()
        # a third run finds nothing left to settle
        Writer(again, WritePolicy(SYSTEM), DuckDBAuditWriter(con), run_id="third").write([])
        assert con.execute("select count(*) from fhir_audit.writes").fetchall() == [(2,)]
    (sent, settled) = rows
    assert sent[0] == "killed" and sent[2:4] == ("create", "sending")
    assert settled[:4] == ("next", sent[1], "create", "committed" if forwarded else "not-committed")
    if forwarded:
        assert settled[4:] == (stored[0]["id"], stored[0]["meta"]["versionId"])
