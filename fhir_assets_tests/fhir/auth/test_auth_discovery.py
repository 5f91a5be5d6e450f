"""SMART discovery against the sandbox and against small servers that get it wrong."""

from __future__ import annotations

import pytest

from fhir_assets.fhir import ConfigurationError, SmartConfiguration, discover
from fhir_assets.sandbox import Sandbox

from .http_server import HttpServer, json_response
from .oauth_server import OAuthServer

HTML = "<html><body>Sign in to MyChart</body></html>"


def html_page(received: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/html"}, HTML.encode()


def test_discover_reads_the_sandbox_configuration(sandbox: Sandbox) -> None:
    config = discover(sandbox.base_url)
    assert config.token_endpoint == sandbox.token_url
    assert "RS384" in config.token_endpoint_auth_signing_alg_values_supported
    assert "ES384" in config.token_endpoint_auth_signing_alg_values_supported
    assert {"permission-v1", "permission-v2"} <= set(config.capabilities)
    assert config.supports_v2_scopes


def test_discover_falls_back_to_the_capability_statement() -> None:
    with OAuthServer(well_known=False) as server:
        config = discover(server.base_url)
    assert config.token_endpoint == f"{server.url}/token"
    assert config.authorization_endpoint == f"{server.url}/authorize"
    assert not config.supports_v2_scopes  # nothing advertised: v1, the form every server takes


def test_discover_html_everywhere_is_a_clear_error() -> None:
    routes = {"/fhir/.well-known/smart-configuration": html_page, "/fhir/metadata": html_page}
    with HttpServer(routes) as server, pytest.raises(ConfigurationError) as caught:
        discover(server.url + "/fhir")
    text = str(caught.value)
    assert "answered text/html, not JSON" in text and "FHIR_TOKEN_URL" in text
    assert "MyChart" not in text


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"authorization_endpoint": "https://x/auth"}, "token_endpoint is missing"),
        ({"token_endpoint": "/relative/token"}, "token_endpoint is missing or not an absolute"),
        ({"token_endpoint": "https://x/t", "capabilities": "permission-v2"}, "capabilities must"),
        ({"token_endpoint": "https://x/t", "scopes_supported": [1, 2]}, "scopes_supported must"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_malformed_smart_configuration_is_a_clear_error(document: object, problem: str) -> None:
    route = {"/fhir/.well-known/smart-configuration": lambda r: json_response(200, document)}
    with HttpServer(route) as server, pytest.raises(ConfigurationError, match=problem):
        discover(server.url + "/fhir")


def test_from_json_reads_every_field() -> None:
    config = SmartConfiguration.from_json(
        {
            "token_endpoint": "https://ehr.example/oauth2/token",
            "authorization_endpoint": "https://ehr.example/oauth2/authorize",
            "scopes_supported": ["system/*.read", "patient/*.read"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384"],
            "capabilities": ["permission-v1", "client-confidential-asymmetric"],
            "extra": "ignored",
        }
    )
    assert config.authorization_endpoint == "https://ehr.example/oauth2/authorize"
    assert config.token_endpoint_auth_signing_alg_values_supported == ("RS384",)
    assert not config.supports_v2_scopes


def test_v2_is_inferred_from_scopes_supported_without_capabilities() -> None:
    config = SmartConfiguration.from_json(
        {"token_endpoint": "https://x/t", "scopes_supported": ["system/*.rs"]}
    )
    assert config.supports_v2_scopes
