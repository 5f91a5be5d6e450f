"""A token endpoint that echoes its request (Basic and post client auth) never gets a secret,
in any encoding, into exception text, logs, a CLI run's output, or Dagster's run and event
storage."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pytest
import requests

from fhir_assets.fhir.auth import ClientSecretTokenSource
from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.errors import RequestError
from fhir_assets.fhir.tokens import TokenRequestError, scrub
from fhir_assets_tests.scripted_server import Reply, Seen, scripted_server
from fhir_assets_tests.security.hostile import (
    CLIENT_ID,
    SECRET,
    TOKEN,
    HostileServer,
    encodings,
    leaks,
)

METHODS = ["client_secret_basic", "client_secret_post"]


@pytest.fixture
def hostile() -> Any:
    with HostileServer() as server:
        yield server


def test_the_hostile_endpoint_really_echoes_every_encoding(hostile: HostileServer) -> None:
    # Without scrubbing, the answer holds the secret: the tests below could fail.
    basic = requests.post(
        hostile.origin + "/token", data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, SECRET), timeout=30,
    )  # fmt: skip
    post = requests.post(
        hostile.origin + "/token",
        data={"client_id": CLIENT_ID, "client_secret": SECRET},
        timeout=30,
    )
    for answer, encoded in ((basic, "basic"), (post, "form")):
        assert {encoded, "json"} <= set(leaks(answer.text))
        assert {encoded, "raw"} <= set(leaks(answer.json()["error_description"]))


@pytest.mark.parametrize("method", METHODS)
def test_an_echoed_secret_is_not_in_the_error_or_the_logs(
    hostile: HostileServer, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = ClientSecretTokenSource(
        token_url=hostile.origin + "/token",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        scope="system/*.read",
        method=method,
        sleep=lambda _: None,
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(TokenRequestError) as raised:
        tokens.token()

    sent = hostile.seen[-1]
    if method == "client_secret_basic":
        assert sent.headers["Authorization"] == "Basic " + encodings(SECRET)["basic"]
    else:
        assert encodings(SECRET)["form"] in sent.body.decode()
    error = raised.value
    assert "invalid_client" in str(error) and "HTTP 401" in str(error) and error.status == 401
    texts = [str(error), repr(error), caplog.text, repr(tokens), str(error.__cause__)]
    assert [leaks(text) for text in texts] == [[]] * len(texts)


@pytest.mark.parametrize(
    "text",
    [
        "x" * 290 + SECRET,  # cut-then-scrub would leave the start of the secret
        "x" * 280 + encodings(SECRET)["basic"],
        "Authorization: Basic " + encodings(SECRET)["basic"],
        "client_secret=" + encodings(SECRET)["form"],
        '{"client_secret": "' + encodings(SECRET)["json"] + '"}',
        "assertion eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJjIn0.c2lnbmF0dXJl tail",
        "Bearer abc.def-123",
    ],
)
def test_scrub_covers_every_encoding_and_shape(text: str) -> None:
    scrubbed = scrub(text, [SECRET, f"{CLIENT_ID}:{SECRET}"])
    assert leaks(scrubbed) == [] and "eyJ" not in scrubbed and "abc.def-123" not in scrubbed
    assert "[redacted]" in scrubbed


def cli_env(hostile: HostileServer, method: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "SNOWFLAKE_"))}
    return env | {
        "FHIR_BASE_URL": hostile.url,
        "FHIR_CLIENT_ID": CLIENT_ID,
        "FHIR_CLIENT_SECRET": SECRET,
        "FHIR_AUTH_METHOD": method.replace("_", "-"),
        "FHIR_TOKEN_URL": hostile.origin + "/token",
        "FHIR_SCOPES": "system/Patient.read",
        "DAGSTER_HOME": str(tmp_path),
    }


@pytest.mark.parametrize("method", METHODS)
def test_a_cli_run_prints_no_secret(hostile: HostileServer, method: str, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("fhir-assets")
    run = subprocess.run(
        [str(cli), "auth", "check"],
        env=cli_env(hostile, method, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "invalid_client" in run.stderr
    assert any(s.path == "/token" for s in hostile.seen), "the CLI never asked for a token"
    assert leaks(run.stdout + run.stderr) == []


@pytest.mark.parametrize("method", METHODS)
def test_a_dagster_run_stores_no_secret(
    hostile: HostileServer, method: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fhir_assets.assets.bulk import EXPORTS, BulkExportResource, build_bulk_asset
    from fhir_assets.resources import FhirServerResource
    from fhir_assets.warehouse.resources import DuckDBWarehouseResource

    fhir = FhirServerResource(
        base_url=hostile.url,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        auth_method=method.replace("_", "-"),
        token_url=hostile.origin + "/token",
        scopes="system/Patient.read",
    )
    resources = {
        "fhir": fhir,
        "bulk": BulkExportResource(folder=str(tmp_path / "exports"), types="Patient"),
        "landing": DuckDBWarehouseResource(database=str(tmp_path / "w.duckdb")),
    }
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(EXPORTS.name, ["p1"])
        with caplog.at_level(logging.DEBUG):
            result = dg.materialize(
                [build_bulk_asset()],
                partition_key="p1",
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
        assert not result.success
        assert any(s.path == "/token" for s in hostile.seen)
        stored = [dg.serialize_value(e) for e in instance.all_logs(result.run_id)]
        stored.append(dg.serialize_value(instance.get_run_by_id(result.run_id)))
        failure = str(result.get_step_failure_events()[0].event_specific_data)
    assert "invalid_client" in failure
    assert leaks("\n".join(stored)) == [] and leaks(failure) == [] and leaks(caplog.text) == []
    compute_logs = [p for p in (tmp_path / "dagster").rglob("*") if p.is_file()]
    assert all(leaks(p.read_bytes().decode("utf-8", "replace")) == [] for p in compute_logs)


def test_an_outcome_echoing_the_authorization_header_is_scrubbed(hostile: HostileServer) -> None:
    from fhir_assets.fhir.client import decode

    diagnostics = f"refused Authorization: Bearer {TOKEN} and eyJa.eyJb.c"
    echoed = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": diagnostics}]}
    response = requests.Response()
    response.status_code, response._content = 403, orjson.dumps(echoed)
    response.request = requests.Request("GET", hostile.url + "/Patient").prepare()
    response.url = hostile.url + "/Patient"
    with pytest.raises(RequestError) as raised:
        decode(response)
    assert leaks(str(raised.value)) == [] and "eyJ" not in str(raised.value)
    assert "[redacted]" in raised.value.issues[0]


def test_an_opaque_token_echoed_without_its_scheme_is_scrubbed() -> None:
    # Opaque tokens have no recognisable shape: only knowing what was sent can hide an echo of it.
    opaque = "op4que-t0ken-7f3a9c"
    requests_seen: list[list[Seen]] = []

    def echo(method: str, path: str) -> Reply:
        token = requests_seen[0][-1].headers["Authorization"].removeprefix("Bearer ")
        issue = {"diagnostics": f"token {token} has expired"}
        return Reply(403, {"resourceType": "OperationOutcome", "issue": [issue]})

    with scripted_server(echo) as (base, seen):
        requests_seen.append(seen)
        client = FhirClient(base + "/fhir", headers={"Authorization": f"Bearer {opaque}"})
        with pytest.raises(RequestError) as raised:
            client.get("Patient")
    assert len(seen) == 1  # the server really saw the token and echoed it in its outcome
    assert opaque not in str(raised.value) and "[redacted]" in str(raised.value)
    assert all(opaque not in issue for issue in raised.value.issues)
