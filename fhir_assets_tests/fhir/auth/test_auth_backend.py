"""SMART Backend Services and client secrets against the real sandbox (sekmet) on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from fhir_assets.fhir import (
    AuthError,
    ClientCredentialsTokenSource,
    ClientSecretTokenSource,
    ConfigurationError,
    ServerSettings,
    check_read_access,
    connect,
    load_private_key,
)
from fhir_assets.fhir.keys import public_jwks
from fhir_assets.sandbox import Sandbox

from .conftest import SECRET, Clients

pytestmark = pytest.mark.xdist_group("smart_sandbox")


def key_source(sandbox: Sandbox, client_id: str, key: Path, **kwargs: object):
    return ClientCredentialsTokenSource(
        token_url=sandbox.token_url,
        client_id=client_id,
        private_key=load_private_key(key),
        scope=str(kwargs.pop("scope", "system/Patient.read")),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("client_id", "key_name", "alg"),
    [
        ("rs384-client", "rs384", "RS384"),
        ("es384-client", "es384", "ES384"),
        ("jwks-url-client", "jwks_url", "ES384"),
    ],
)
def test_backend_services_client_reads_with_its_key(
    smart_sandbox: Sandbox, client_keys: Clients, client_id: str, key_name: str, alg: str
) -> None:
    key = getattr(client_keys, key_name)
    settings = ServerSettings(
        smart_sandbox.base_url,
        client_id=client_id,
        private_key=str(key),
        resource_types=("Patient", "Condition"),
    )
    with connect(settings) as client:
        patients = list(client.search("Patient", {"_count": 20}))
        assert len(patients) == smart_sandbox.counts(["Patient"])["Patient"] > 0
        tokens = client.session.auth.tokens  # type: ignore[union-attr]
        assert tokens.alg == alg
        # sekmet advertises permission-v2: the least v2 set for the two types was asked for
        assert tokens.token().scopes == ("system/Condition.rs", "system/Patient.rs")


@pytest.mark.parametrize("form", ["pem-text", "jwk-file", "jwk-text"])
def test_private_key_from_text_or_jwk(
    smart_sandbox: Sandbox, client_keys: Clients, tmp_path: Path, form: str
) -> None:
    key = load_private_key(client_keys.es384)
    jwk_text = json.dumps(key.as_dict(private=True))
    source = {
        "pem-text": client_keys.es384.read_text(),
        "jwk-file": str(tmp_path / "key.jwk"),
        "jwk-text": jwk_text,
    }[form]
    (tmp_path / "key.jwk").write_text(jwk_text)
    settings = ServerSettings(
        smart_sandbox.base_url,
        client_id="es384-client",
        private_key=source,
        scopes="system/Patient.read",
    )
    with connect(settings) as client:
        assert client.get("Patient", {"_count": 1})["resourceType"] == "Bundle"
    assert source not in repr(settings)


def test_assertion_claims_kid_jku_and_fresh_jti(
    smart_sandbox: Sandbox, client_keys: Clients
) -> None:
    key = load_private_key(client_keys.rs384)
    tokens = key_source(
        smart_sandbox, "rs384-client", client_keys.rs384, jku="https://client.example/jwks.json"
    )
    first, second = tokens.assertion(), tokens.assertion()
    public = KeySet.import_key_set(public_jwks(key))
    one = jwt.decode(first, public, algorithms=["RS384"])
    two = jwt.decode(second, public, algorithms=["RS384"])
    assert one.header["kid"] == key.kid and one.header["alg"] == "RS384"
    assert one.header["jku"] == "https://client.example/jwks.json"
    assert one.claims["iss"] == one.claims["sub"] == "rs384-client"
    assert one.claims["aud"] == smart_sandbox.token_url
    assert 0 < one.claims["exp"] - time.time() <= 300
    assert one.claims["jti"] != two.claims["jti"]


def test_every_token_request_sends_a_new_jti(smart_sandbox: Sandbox, client_keys: Clients) -> None:
    # sekmet refuses a reused jti, so two successful fetches prove two fresh assertions
    tokens = key_source(smart_sandbox, "rs384-client", client_keys.rs384)
    first = tokens.token()
    second = tokens.token(force_refresh=True)
    assert first.access_token != second.access_token and tokens.fetches == 2


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_secret_methods(smart_sandbox: Sandbox, method: str) -> None:
    tokens = ClientSecretTokenSource(
        token_url=smart_sandbox.token_url,
        client_id="secret-client",
        client_secret=SECRET,
        scope="system/Patient.read",
        method=method,
    )
    assert tokens.token().scopes == ("system/Patient.read",)
    assert SECRET not in repr(tokens)


def test_client_secret_settings_infer_the_method(smart_sandbox: Sandbox) -> None:
    settings = ServerSettings(
        smart_sandbox.base_url,
        client_id="secret-client",
        client_secret=SECRET,
        resource_types=("Patient",),
    )
    assert settings.method() == "client-secret-basic"
    with connect(settings) as client:
        assert next(client.search("Patient"))["resourceType"] == "Patient"
    assert SECRET not in repr(settings)


def refusal(tokens: ClientCredentialsTokenSource | ClientSecretTokenSource) -> AuthError:
    with pytest.raises(AuthError) as caught:
        tokens.token()
    return caught.value


def test_wrong_key_is_retried_once_then_explained(
    smart_sandbox: Sandbox, client_keys: Clients
) -> None:
    slept: list[float] = []
    tokens = key_source(smart_sandbox, "rs384-client", client_keys.other, sleep=slept.append)
    error = refusal(tokens)
    assert slept == [1.0]  # one retry: Epic's transient invalid_client
    text = str(error)
    assert "invalid_client" in text and "not registered" in text and "clock" in text
    assert "audit user" in text
    assert client_keys.other.read_text().splitlines()[1] not in text


def test_expired_assertion_is_refused_clearly(smart_sandbox: Sandbox, client_keys: Clients) -> None:
    skewed = key_source(
        smart_sandbox,
        "rs384-client",
        client_keys.rs384,
        now=lambda: time.time() - 3600,
        sleep=lambda s: None,
    )
    text = str(refusal(skewed))
    assert "expired" in text and "clock" in text


def test_unknown_client_is_refused_clearly(smart_sandbox: Sandbox, client_keys: Clients) -> None:
    text = str(
        refusal(key_source(smart_sandbox, "nobody", client_keys.rs384, sleep=lambda s: None))
    )
    assert "Unknown client_id 'nobody'" in text and "client id is wrong" in text


def test_wrong_secret_never_appears_in_the_error(smart_sandbox: Sandbox) -> None:
    wrong = "wrong-secret-value-that-must-stay-hidden"
    tokens = ClientSecretTokenSource(
        token_url=smart_sandbox.token_url,
        client_id="secret-client",
        client_secret=wrong,
        scope="system/Patient.read",
        sleep=lambda s: None,
    )
    error = refusal(tokens)
    assert "invalid_client" in str(error) and wrong not in str(error)
    assert wrong not in repr(error.__cause__ or error.__context__ or "")


def test_limited_client_fails_before_any_data_naming_the_missing_scope(
    smart_sandbox: Sandbox, client_keys: Clients
) -> None:
    settings = ServerSettings(
        smart_sandbox.base_url,
        client_id="patient-only",
        private_key=str(client_keys.rs384),
        resource_types=("Patient", "Observation"),
    )
    check_read_access(settings, ["Patient"])
    with pytest.raises(AuthError, match=r"missing scope system/Observation\.rs") as caught:
        check_read_access(settings, ["Patient", "Observation"])
    assert "granted: system/Patient.rs" in str(caught.value)


def test_asking_only_for_scopes_the_client_lacks_is_a_clear_error(
    smart_sandbox: Sandbox, client_keys: Clients
) -> None:
    tokens = key_source(
        smart_sandbox, "patient-only", client_keys.rs384, scope="system/Observation.read"
    )
    text = str(refusal(tokens))
    assert "invalid_scope" in text and "system/Observation.read" in text


def test_missing_credential_is_a_configuration_error(smart_sandbox: Sandbox) -> None:
    settings = ServerSettings(
        smart_sandbox.base_url, client_id="rs384-client", auth_method="backend-services"
    )
    with pytest.raises(ConfigurationError, match="FHIR_PRIVATE_KEY_PATH"):
        connect(settings)


def test_unreadable_key_text_is_never_echoed(client_keys: Clients) -> None:
    der_like = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" * 20  # key material, but not PEM or JWK
    with pytest.raises(ConfigurationError) as caught:
        load_private_key(der_like)
    assert "neither a file path nor PEM/JWK" in str(caught.value)
    assert "MIIE" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="public key"):
        load_private_key(json.dumps(public_jwks(load_private_key(client_keys.rs384))))
