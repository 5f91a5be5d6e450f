"""The write-back engine against a fresh sandbox: idempotence, validation, rollback, audit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from fhir_assets.fhir import FhirClient
from fhir_assets.sandbox import Sandbox
from fhir_assets.writeback import Writer, summarize

from .conftest import SYSTEM, after_each_request, audit_rows, by_identifier, count_scores, score

WriterFactory = Callable[..., Writer]


def count_posts(client: FhirClient) -> list[str]:
    """Record the method of every request the client sends from now on."""
    sent: list[str] = []
    after_each_request(client, lambda method, url, params: sent.append(method))
    return sent


def test_writer_second_run_creates_nothing(
    make_writer: WriterFactory, client: FhirClient, patients: list[str]
) -> None:
    resources = [score(p, i) for i, p in enumerate(patients)]

    first = make_writer("run-1").write(resources)
    second = make_writer("run-2").write(resources)

    assert summarize(first)["created"] == len(patients)
    assert [o.outcome for o in second] == ["unchanged"] * len(patients)
    assert count_scores(client) == len(patients)
    assert {o.id for o in first} == {o.id for o in second}


def test_writer_updates_only_what_changed(
    make_writer: WriterFactory, client: FhirClient, patients: list[str]
) -> None:
    make_writer("run-1").write([score(p, 1) for p in patients[:3]])
    changed = [score(patients[0], 9), score(patients[1], 1), score(patients[2], 1)]

    outcomes = make_writer("run-2").write(changed)

    assert [o.outcome for o in outcomes] == ["updated", "unchanged", "unchanged"]
    assert outcomes[0].version_id == "2"
    assert by_identifier(client, patients[0])[0]["valueInteger"] == 9


def test_writer_never_sends_a_transaction_with_an_invalid_entry(
    make_writer: WriterFactory,
    client: FhirClient,
    patients: list[str],
    audit_db: duckdb.DuckDBPyConnection,
) -> None:
    invalid = {k: v for k, v in score(patients[1], 1).items() if k != "code"}
    sent = count_posts(client)

    outcomes = make_writer().write([score(patients[0], 1), invalid, score(patients[2], 1)])

    assert [o.outcome for o in outcomes] == ["failed", "invalid", "failed"]
    assert any("Observation.code" in issue for issue in outcomes[1].issues)
    assert "POST" not in sent and count_scores(client) == 0
    rows = audit_rows(audit_db, "outcome, interaction, http_status, outcome_text")
    assert sorted(r[:3] for r in rows) == [
        ("invalid", "validate", None),
        ("skipped", "skip", None),
        ("skipped", "skip", None),
    ]


def test_writer_split_policy_sends_the_valid_entries(
    make_writer: WriterFactory, client: FhirClient, patients: list[str]
) -> None:
    invalid = {k: v for k, v in score(patients[1], 1).items() if k != "status"}

    outcomes = make_writer(split_failed=True).write([score(patients[0], 1), invalid])

    assert [o.outcome for o in outcomes] == ["created", "invalid"]
    assert count_scores(client) == 1


def test_writer_refuses_resources_without_or_with_repeated_identifiers(
    make_writer: WriterFactory, client: FhirClient, patients: list[str]
) -> None:
    writer = make_writer(split_failed=True)
    anonymous = {**score(patients[0], 1), "identifier": [{"system": "urn:other", "value": "1"}]}

    outcomes = writer.write([anonymous, score(patients[1], 1), score(patients[1], 2)])

    assert [o.outcome for o in outcomes] == ["invalid", "created", "invalid"]
    assert "business identifier" in outcomes[0].issues[0]
    assert "twice" in outcomes[2].issues[0]
    assert [r["valueInteger"] for r in by_identifier(client, patients[1])] == [1]


@pytest.mark.parametrize("split", [False, True])
def test_writer_reports_a_transaction_the_server_rolls_back(
    split: bool,
    make_writer: WriterFactory,
    server: Sandbox,
    client: FhirClient,
    patients: list[str],
    audit_db: duckdb.DuckDBPyConnection,
) -> None:
    before = server.counts(["Observation"])
    # valid for the model, but the server cannot resolve the conditional reference: HTTP 404
    orphan = {**score(patients[1], 1), "subject": {"reference": "Patient?identifier=urn:x|none"}}

    outcomes = make_writer(split_failed=split).write([score(patients[0], 1), orphan])

    if split:
        assert [o.outcome for o in outcomes] == ["created", "failed"]
        assert server.counts(["Observation"])["Observation"] == before["Observation"] + 1
    else:
        assert [o.outcome for o in outcomes] == ["failed", "failed"]
        assert server.counts(["Observation"]) == before
    assert any("rolled back" in issue for issue in outcomes[1].issues)
    statuses = audit_rows(audit_db, "outcome, http_status")
    assert ("rejected", 404) in statuses


def test_writer_dry_run_diffs_without_writing(
    make_writer: WriterFactory, client: FhirClient, patients: list[str]
) -> None:
    make_writer("run-1").write([score(patients[0], 1), score(patients[1], 1)])
    sent = count_posts(client)
    planned = [score(patients[0], 1), score(patients[1], 5), score(patients[2], 1)]

    outcomes = make_writer("run-2").dry_run(planned)

    assert [o.outcome for o in outcomes] == ["unchanged", "would-update", "would-create"]
    assert outcomes[1].changed == ("valueInteger",)
    assert set(sent) == {"GET"}
    assert count_scores(client) == 2


def test_writer_server_validation_is_used_when_offered(
    make_writer: WriterFactory, client: FhirClient, patients: list[str]
) -> None:
    sent = count_posts(client)

    outcomes = make_writer(server_validate=True).write([score(patients[0], 1)])

    assert [o.outcome for o in outcomes] == ["created"]
    assert sent.count("POST") == 2  # $validate, then the transaction


def test_server_issues_reports_the_servers_errors(client: FhirClient) -> None:
    from fhir_assets.writeback.validate import offers_validate, server_issues

    assert offers_validate(client.capabilities(), "Observation")
    assert server_issues(client, {"resourceType": "Observation", "status": "final"})


def test_writer_audits_every_attempt_without_bodies(
    make_writer: WriterFactory, patients: list[str], audit_db: duckdb.DuckDBPyConnection
) -> None:
    resources = [score(p, 1) for p in patients[:2]]

    outcomes = make_writer("run-7").write(resources)

    rows = audit_db.execute(
        "select run_id, resource_type, resource_id, identifier, interaction, http_status, "
        "outcome, version_id, length(request_hash) from fhir_audit.writes "
        "where outcome <> 'sending' order by identifier"
    ).fetchall()
    assert [(r[0], r[4], r[5], r[6], r[7], r[8]) for r in rows] == [
        ("run-7", "create", 201, "created", "1", 64)
    ] * 2
    sending = audit_db.execute(
        "select interaction, http_status, length(request_hash) from fhir_audit.writes "
        "where outcome = 'sending'"
    ).fetchall()
    assert sending == [("create", None, 64)] * 2  # recorded before the transaction went out
    assert sorted(r[2] for r in rows) == sorted(o.id for o in outcomes)
    columns = [c[0] for c in audit_db.execute("describe fhir_audit.writes").fetchall()]
    assert "resource" not in columns and "body" not in columns


def test_concurrent_runs_on_the_same_identifiers_make_no_duplicates(
    server: Sandbox,
    client: FhirClient,
    patients: list[str],
    tmp_path: Path,
) -> None:
    """Conditional creates inside one transaction each: sekmet runs a transaction under its store
    lock, so racing runs meet an existing resource instead of making a second one (parallel
    single POSTs with If-None-Exist raced into duplicates on it)."""
    from concurrent.futures import ThreadPoolExecutor

    from fhir_assets.writeback import DuckDBAuditWriter, WritePolicy

    def run(n: int) -> list[str]:
        with server.fhir_client() as fhir, duckdb.connect(str(tmp_path / f"{n}.duckdb")) as con:
            policy = WritePolicy(SYSTEM, on_conflict="server-wins", backoff_s=0)
            writer = Writer(fhir, policy, DuckDBAuditWriter(con), run_id=f"run-{n}")
            return [o.outcome for o in writer.write([score(p, 1) for p in patients])]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(8)))

    assert sum(r.count("created") for r in results) == len(patients)
    assert all(set(r) <= {"created", "unchanged"} for r in results)
    assert count_scores(client) == len(patients)


def test_writer_adds_a_provenance_per_transaction(
    make_writer: WriterFactory, client: FhirClient, patients: list[str]
) -> None:
    from fhir_assets.writeback.validate import validate_resource

    created = make_writer("run-1", provenance=True).write([score(p, 1) for p in patients[:3]])
    updated = make_writer("run-2", provenance=True).write([score(patients[0], 2)])
    make_writer("run-3", provenance=True).write([score(patients[0], 2)])  # unchanged: no write

    provenances = list(client.search("Provenance", {"_count": 50}))
    # the sandbox also holds seeded Provenances (sandbox/us_core.py), without activity
    ours = [p for p in provenances if "write-back" in p.get("activity", {}).get("text", "")]
    assert len(ours) == 2
    targets = sorted(sorted(t["reference"] for t in p["target"]) for p in ours)
    assert targets == sorted(
        [
            sorted(f"Observation/{o.id}" for o in created),
            [f"Observation/{updated[0].id}"],
        ]
    )
    assert all(validate_resource(p) == () for p in ours)
