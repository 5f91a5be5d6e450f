"""SMART auth in the Dagster layer: a real materialization leaks no secret anywhere, and a raw
asset whose type the granted scopes don't cover fails fast, naming the scope."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from fhir_assets.assets.defs import build_defs
from fhir_assets.assets.raw import build_raw_asset
from fhir_assets.catalog import select
from fhir_assets.fhir import load_private_key, token_source
from fhir_assets.fhir.keys import generate_private_key, public_jwks, write_private_key
from fhir_assets.resources import FhirServerResource
from fhir_assets.sandbox import Sandbox
from fhir_assets.settings import Settings
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

pytestmark = pytest.mark.xdist_group("auth_resources")

SECRET = "dagster-secret-value-0123456789abcdef"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.")  # any JWS: access tokens and client assertions


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "client.pem"
    write_private_key(generate_private_key("ES384"), path)
    return path


@pytest.fixture(scope="module")
def smart_server(sandbox_home: Path, key_pem: Path) -> Iterator[Sandbox]:
    """A sandbox of this module's own (read-only use) with a key, a secret and a limited client."""
    jwks = public_jwks(load_private_key(key_pem))
    clients = [
        {"client_id": "key-client", "jwks": jwks, "scopes": "system/*.read"},
        {"client_id": "secret-client", "client_secret": SECRET, "scopes": "system/*.read"},
        {"client_id": "patient-only", "jwks": jwks, "scopes": "system/Patient.read"},
    ]
    with Sandbox(home=sandbox_home, extra_clients=clients, token_lifetime=30) as server:
        yield server


def materialize(
    resource: FhirServerResource, types: str, tmp_path: Path
) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    assets = [build_raw_asset(spec) for spec in select(types)]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        assets,
        resources={
            "fhir": resource,
            "landing": DuckDBWarehouseResource(database=str(tmp_path / "w.duckdb")),
        },
        instance=instance,
        raise_on_error=False,
    )
    return result, instance


def everything_said(
    result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance, *extra: object
) -> str:
    """Every text a run leaves: events, the instance's event log and run record, metadata."""
    texts = [repr(e) for e in result.all_events]
    for entry in instance.all_logs(result.run_id):
        texts += [entry.user_message, repr(entry.dagster_event)]
    run = instance.get_run_by_id(result.run_id)
    texts += [repr(run.run_config), repr(run.tags)]
    for event in result.get_asset_materialization_events():
        texts.append(repr(event.materialization.metadata))
    return "\n".join([*texts, *(repr(x) for x in extra)])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["backend-services", "client-secret-post"])
def test_a_real_materialization_leaks_no_token_secret_or_key(
    smart_server: Sandbox,
    key_pem: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    method: str,
) -> None:
    pem = key_pem.read_text()
    monkeypatch.setenv("TEST_FHIR_PRIVATE_KEY", pem)
    monkeypatch.setenv("TEST_FHIR_CLIENT_SECRET", SECRET)
    credentials = (
        {"client_id": "key-client", "private_key": dg.EnvVar("TEST_FHIR_PRIVATE_KEY")}
        if method == "backend-services"
        else {"client_id": "secret-client", "client_secret": dg.EnvVar("TEST_FHIR_CLIENT_SECRET")}
    )
    resource = FhirServerResource(
        base_url=smart_server.base_url,
        auth_method=method,
        resource_types=["Patient", "Encounter"],
        **credentials,
    )
    caplog.set_level(logging.DEBUG)

    result, instance = materialize(resource, "Patient,Encounter", tmp_path)

    assert result.success
    settings = resource.model_copy(
        update={
            "private_key": pem if "private_key" in credentials else None,
            "client_secret": SECRET if "client_secret" in credentials else None,
        }
    ).settings()
    tokens = token_source(settings)
    assert tokens is not None and tokens.fetches >= 1  # the run's own cached token source
    access_token = tokens.token().access_token
    said = "\n".join(
        [
            everything_said(result, instance, resource, settings, tokens),
            caplog.text,
            *(r.getMessage() for r in caplog.records),
            *capfd.readouterr(),
        ]
    )
    pem_lines = [line for line in pem.splitlines() if "-----" not in line]
    for secret in [access_token, SECRET, *pem_lines]:
        assert secret not in said
        assert secret[-16:] not in said  # no tail of one either
    assert not JWT.search(said)
    assert "obtained an access token" in caplog.text  # the logs were really captured


@pytest.mark.slow
def test_raw_asset_fails_fast_when_scopes_do_not_cover_its_type(
    smart_server: Sandbox, key_pem: Path, tmp_path: Path
) -> None:
    resource = FhirServerResource(
        base_url=smart_server.base_url,
        client_id="patient-only",
        private_key_path=str(key_pem),
        resource_types=["Patient", "Observation"],
    )
    result, _ = materialize(resource, "Patient,Observation", tmp_path)

    assert not result.success
    succeeded = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert succeeded == {"patient"}
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1
    message = failures[0].step_failure_data.error.to_string()
    assert (
        "missing scope system/Observation.rs" in message and "granted: system/Patient.rs" in message
    )


def test_definitions_pass_secrets_as_env_vars() -> None:
    environ = {
        "FHIR_BASE_URL": "https://ehr.example/fhir",
        "FHIR_CLIENT_ID": "client",
        "FHIR_CLIENT_SECRET": SECRET,
        "FHIR_AUTH_METHOD": "client-secret-post",
        "FHIR_RESOURCE_TYPES": "Patient,Observation",
    }
    fhir = build_defs(Settings.from_environ(environ, secrets_from_env=True)).resources["fhir"]
    assert isinstance(fhir.client_secret, dg.EnvVar)
    assert fhir.private_key is None and fhir.token_key is None
    assert fhir.client_secret.env_var_name == "FHIR_CLIENT_SECRET"
    assert fhir.resource_types == ["Patient", "Observation"]
    assert fhir.scopes is None  # computed from the types and the server's SMART version


@pytest.mark.slow
def test_a_failed_login_in_a_run_leaks_no_secret(
    smart_server: Sandbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    wrong = "wrong-dagster-secret-0123456789"
    resource = FhirServerResource(
        base_url=smart_server.base_url,
        client_id="secret-client",
        client_secret=wrong,
        resource_types=["Patient"],
    )
    caplog.set_level(logging.DEBUG)
    result, instance = materialize(resource, "Patient", tmp_path)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error_text = failure.step_failure_data.error.to_string()
    assert "invalid_client" in error_text and "Usual causes" in error_text
    said = "\n".join(
        [everything_said(result, instance, resource), error_text, caplog.text, *capfd.readouterr()]
    )
    assert wrong not in said and wrong[-16:] not in said
