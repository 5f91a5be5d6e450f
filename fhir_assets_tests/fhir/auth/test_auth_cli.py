"""``fhir-assets keys generate``, ``auth check`` and ``auth login`` run as a user would."""

from __future__ import annotations

import json
import stat
import webbrowser
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from fhir_assets.cli import app
from fhir_assets.fhir import ClientCredentialsTokenSource, TokenStore, load_private_key
from fhir_assets.fhir.token_store import fernet_key
from fhir_assets.sandbox import Sandbox

from .conftest import SECRET, Clients
from .oauth_server import OAuthServer

pytestmark = pytest.mark.xdist_group("smart_sandbox")
FHIR_VARS = (
    "FHIR_BASE_URL",
    "FHIR_CLIENT_ID",
    "FHIR_PRIVATE_KEY_PATH",
    "FHIR_PRIVATE_KEY",
    "FHIR_CLIENT_SECRET",
    "FHIR_AUTH_METHOD",
    "FHIR_SCOPES",
    "FHIR_TOKEN_URL",
    "FHIR_RESOURCE_TYPES",
    "FHIR_TOKEN_KEY",
    "FHIR_TOKEN_DIR",
    "FHIR_JKU",
)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    for name in FHIR_VARS:
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        return CliRunner().invoke(app, list(args))

    return invoke


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_keys_generate_writes_a_private_key_and_a_registrable_jwks(
    run: Callable[..., object], tmp_path: Path, make_sandbox: Callable[..., Sandbox], alg: str
) -> None:
    out = tmp_path / "client.pem"
    result = run("keys", "generate", "--alg", alg, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    printed = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert printed == json.loads(Path(f"{out}.jwks.json").read_text())
    assert printed["keys"][0]["alg"] == alg and "d" not in printed["keys"][0]  # public only
    assert "PRIVATE KEY" not in result.output

    # the printed JWKS is what gets registered: a server that has it accepts the key
    server = make_sandbox(
        extra_clients=[{"client_id": "new", "jwks": printed, "scopes": "system/*.read"}]
    )
    tokens = ClientCredentialsTokenSource(
        token_url=server.token_url,
        client_id="new",
        private_key=load_private_key(out),
        scope="system/Patient.read",
    )
    assert tokens.token().scopes == ("system/Patient.read",)

    again = run("keys", "generate", "--alg", alg, "--out", str(out))
    assert again.exit_code == 2 and "--force" in again.output


def test_keys_generate_refuses_other_algorithms(run: Callable[..., object], tmp_path: Path) -> None:
    result = run("keys", "generate", "--alg", "HS256", "--out", str(tmp_path / "k.pem"))
    assert result.exit_code == 2 and "RS384, ES384" in result.output


def test_auth_check_prints_scopes_and_expiry_never_the_token(
    run: Callable[..., object], smart_sandbox: Sandbox
) -> None:
    result = run(
        "auth",
        "check",
        env={
            "FHIR_BASE_URL": smart_sandbox.base_url,
            "FHIR_CLIENT_ID": "secret-client",
            "FHIR_CLIENT_SECRET": SECRET,
            "FHIR_RESOURCE_TYPES": "Patient,Encounter",
        },
    )
    assert result.exit_code == 0, result.output
    assert "granted scopes: system/Encounter.rs system/Patient.rs" in result.output
    assert "auth method   : client-secret-basic" in result.output
    assert "expires       : " in result.output
    assert "eyJ" not in result.output and SECRET not in result.output


def test_auth_check_fails_naming_the_missing_scope(
    run: Callable[..., object], smart_sandbox: Sandbox, client_keys: Clients
) -> None:
    result = run(
        "auth",
        "check",
        env={
            "FHIR_BASE_URL": smart_sandbox.base_url,
            "FHIR_CLIENT_ID": "patient-only",
            "FHIR_PRIVATE_KEY": client_keys.rs384.read_text(),
            "FHIR_RESOURCE_TYPES": "Patient,Observation",
        },
    )
    assert result.exit_code == 1
    assert "missing scope system/Observation.rs" in result.output
    assert "PRIVATE KEY" not in result.output


def test_auth_check_explains_a_wrong_secret(
    run: Callable[..., object], smart_sandbox: Sandbox
) -> None:
    result = run(
        "auth",
        "check",
        env={
            "FHIR_BASE_URL": smart_sandbox.base_url,
            "FHIR_CLIENT_ID": "secret-client",
            "FHIR_CLIENT_SECRET": "not-the-secret-value-123",
        },
    )
    assert result.exit_code == 1
    assert "invalid_client" in result.output and "not-the-secret" not in result.output


def test_auth_login_stores_tokens_that_auth_check_then_uses(
    run: Callable[..., object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def browser(url: str) -> bool:  # the user's browser: follows the URL, approves
        opened.append(url)
        return requests.get(url, timeout=10).status_code == 200

    monkeypatch.setattr(webbrowser, "open", browser)
    with OAuthServer() as oauth:
        oauth.add_client("cli-app", scope="user/Patient.rs offline_access")
        env = {
            "FHIR_BASE_URL": oauth.base_url,
            "FHIR_CLIENT_ID": "cli-app",
            "FHIR_TOKEN_DIR": str(tmp_path / "tokens"),
            "FHIR_TOKEN_KEY": "passphrase-1",
            "FHIR_RESOURCE_TYPES": "Patient",
        }
        login = run("auth", "login", "--timeout", "10", env=env)
        assert login.exit_code == 0, login.output
        assert opened and opened[0] in login.output  # printed as well as opened
        assert "granted scopes: user/Patient.rs offline_access" in login.output
        assert "refresh token: stored" in login.output

        store = TokenStore(tmp_path / "tokens", fernet_key("passphrase-1", tmp_path / "tokens"))
        stored = store.load(oauth.base_url, "cli-app")
        assert stored is not None and stored.refresh_token
        assert stored.access_token not in login.output

        check = run("auth", "check", env=env)
        assert check.exit_code == 0, check.output
        assert "authorization-code" in check.output


def test_auth_login_against_a_server_without_the_code_flow(
    run: Callable[..., object], smart_sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run(
        "auth",
        "login",
        "--no-browser",
        "--timeout",
        "1",
        env={
            "FHIR_BASE_URL": smart_sandbox.base_url,
            "FHIR_CLIENT_ID": "app",
            "FHIR_TOKEN_DIR": str(tmp_path),
            "FHIR_TOKEN_KEY": "k",
        },
    )
    # sekmet advertises an authorize endpoint that refuses every request: the user sees the URL,
    # nothing arrives, and the command says what to do
    assert result.exit_code == 1
    assert "no authorization redirect arrived" in result.output
