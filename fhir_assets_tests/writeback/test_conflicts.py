"""A concurrent modification between the writer's read and its write: 412, then the policy.

The concurrent writer is real: a second client updates the resource on the server right after
the writer's search by identifier comes back (a ``requests`` response hook on the writer's
session), so the writer's version-aware update meets HTTP 412.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pytest

from fhir_assets.fhir import FhirClient
from fhir_assets.fhir.write import WriteClient
from fhir_assets.sandbox import Sandbox
from fhir_assets.writeback import Writer

from .conftest import after_each_request, audit_rows, by_identifier, score

WriterFactory = Callable[..., Writer]
THEIR_NOTE = [{"text": "changed by someone else"}]


def interfere(
    writer_client: FhirClient, other: FhirClient, patient_id: str, times: int = 1
) -> None:
    """After each of the writer's first ``times`` identifier searches, change the resource."""
    done: list[bool] = []

    def change(method: str, url: str, params: Any) -> None:
        if len(done) < times and method == "GET" and "identifier" in (params or {}):
            done.append(True)
            current = by_identifier(other, patient_id)[0]
            WriteClient(other).update({**current, "note": THEIR_NOTE})

    after_each_request(writer_client, change)


def keep_their_note(server: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    return {**ours, "note": server.get("note", [])}


# Each attempt is recorded as "sending" before it goes out, then with its result.
SENT = ["sending", "created", "sending"]
UPDATED = ["sending", "updated"]


@pytest.mark.parametrize(
    ("policy", "outcome", "value", "note", "audited"),
    [
        ({"on_conflict": "fail"}, "conflict", 1, THEIR_NOTE, [*SENT, "conflict"]),
        ({"on_conflict": "server-wins"}, "server-kept", 1, THEIR_NOTE, [*SENT, "conflict"]),
        ({"on_conflict": "client-wins"}, "updated", 2, None, [*SENT, "conflict", *UPDATED]),
        (
            {"on_conflict": "merge", "merge": keep_their_note},
            "updated",
            2,
            THEIR_NOTE,
            [*SENT, "conflict", *UPDATED],
        ),
    ],
)
def test_conflict_policy_does_what_it_says(
    policy: dict[str, Any],
    outcome: str,
    value: int,
    note: list[dict[str, str]] | None,
    audited: list[str],
    server: Sandbox,
    make_writer: WriterFactory,
    patients: list[str],
    audit_db: duckdb.DuckDBPyConnection,
) -> None:
    make_writer("run-1").write([score(patients[0], 1)])
    with server.fhir_client() as writer_client, server.fhir_client() as other:
        interfere(writer_client, other, patients[0])

        [result] = make_writer("run-2", fhir=writer_client, **policy).write([score(patients[0], 2)])

        [stored] = by_identifier(other, patients[0])
    assert (result.outcome, result.conflicts) == (outcome, 1)
    assert (stored["valueInteger"], stored.get("note")) == (value, note)
    rows = audit_rows(audit_db, "outcome, http_status, attempt")
    assert [r[0] for r in rows] == audited
    assert rows[3][1:] == (412, 1)


def test_conflict_retries_are_bounded(
    server: Sandbox,
    client: FhirClient,
    make_writer: WriterFactory,
    patients: list[str],
    audit_db: duckdb.DuckDBPyConnection,
) -> None:
    make_writer("run-1").write([score(patients[0], 1)])
    with server.fhir_client() as writer_client, server.fhir_client() as other:
        # interfere after every read: client-wins can never get through
        interfere(writer_client, other, patients[0], times=10)

        [result] = make_writer(
            "run-2", fhir=writer_client, on_conflict="client-wins", conflict_retries=2
        ).write([score(patients[0], 2)])

    assert [r[0] for r in audit_rows(audit_db, "http_status")].count(412) == 3
    # three 412s; the writer attributed the two it re-read after to this resource
    assert (result.outcome, result.conflicts) == ("conflict", 2)
    assert result.issues
    assert by_identifier(client, patients[0])[0]["valueInteger"] == 1
