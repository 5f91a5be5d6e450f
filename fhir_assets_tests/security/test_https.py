"""Plain http to a host other than this machine is refused before any connection (no DNS
look-up, no socket), at every edge; loopback is allowed; ``FHIR_ALLOW_INSECURE_HTTP=1`` opts in
with one warning per process."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3.util.connection

from fhir_assets.fhir import ServerSettings, connect
from fhir_assets.fhir import urls as urls_module
from fhir_assets.fhir.auth import ClientCredentialsTokenSource, ClientSecretTokenSource
from fhir_assets.fhir.bulk import BulkClient, ExportRequest, run_export
from fhir_assets.fhir.client import FhirClient
from fhir_assets.fhir.keys import generate_private_key
from fhir_assets.fhir.smart import SmartConfiguration, discover
from fhir_assets.fhir.urls import InsecureUrlError, require_https
from fhir_assets_tests.security.hostile import HostileServer

# Never resolvable (RFC 6761), and a private address that is not this machine.
REMOTE = ["http://example.invalid/fhir", "http://10.255.255.1/fhir", "http://[fe80::1]/fhir"]


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every DNS look-up and socket connect, recorded (and refused) while the test runs."""
    seen: list[Any] = []

    def record(name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, args[:1]))
            raise OSError(f"test: no {name} allowed")

        return refuse

    monkeypatch.setattr(socket, "create_connection", record("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", record("getaddrinfo"))
    monkeypatch.setattr(urllib3.util.connection, "create_connection", record("urllib3 connect"))
    monkeypatch.delenv("FHIR_ALLOW_INSECURE_HTTP", raising=False)
    return seen


EDGES: dict[str, Callable[[str, Path], Any]] = {
    "client": lambda url, _: FhirClient(url).get("metadata"),
    "connect": lambda url, _: connect(ServerSettings(base_url=url)),
    "discover": lambda url, _: discover(url),
    "client-secret token": lambda url, _: ClientSecretTokenSource(
        token_url=url + "/token", client_id="c", client_secret="s", scope="system/*.read"
    ).token(),
    "settings token url": lambda url, _: connect(
        ServerSettings(
            base_url="https://fhir.example.invalid/fhir",
            client_id="c",
            client_secret="s",
            token_url=url + "/token",
            scopes="system/*.read",
        )
    ),
    "jku": lambda url, tmp: ClientCredentialsTokenSource(
        token_url="https://fhir.example.invalid/token",
        client_id="c",
        private_key=generate_private_key("RS384"),
        scope="system/*.read",
        jku=url + "/jwks.json",
    ),
    "discovered endpoint": lambda url, _: SmartConfiguration.from_json(
        {"token_endpoint": url + "/token"}
    ),
}


@pytest.mark.parametrize("url", REMOTE)
@pytest.mark.parametrize("edge", sorted(EDGES))
def test_http_to_another_host_is_refused_before_connecting(
    attempts: list[Any], tmp_path: Path, edge: str, url: str
) -> None:
    with pytest.raises(InsecureUrlError) as raised:
        EDGES[edge](url, tmp_path)
    assert attempts == []
    assert "FHIR_ALLOW_INSECURE_HTTP=1" in str(raised.value) and "https://" in str(raised.value)


@pytest.mark.parametrize("redirected", [False, True])
def test_export_file_url_and_redirect_target_over_http_are_refused(
    tmp_path: Path, redirected: bool
) -> None:
    # a real export from a loopback server whose manifest (or a redirect) points to an http host
    remote = "http://10.255.255.1/f.ndjson"
    with HostileServer() as server:
        server.redirects["r.ndjson"] = remote
        url = server.file_url("r.ndjson") if redirected else remote
        server.manifest = server.output_manifest([("Patient", url)])
        with BulkClient(FhirClient(server.url)) as bulk, pytest.raises(InsecureUrlError) as raised:
            run_export(bulk, ExportRequest(types=("Patient",)), tmp_path / "export")
        asked = [s.path for s in server.seen if s.path.startswith("/files/")]
    assert "10.255.255.1" in str(raised.value)
    assert asked == (["/files/r.ndjson"] if redirected else [])
    assert not any(p.suffix == ".part" for p in (tmp_path / "export").rglob("*"))


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/fhir", "http://127.8.9.10/fhir", "http://localhost/x", "http://[::1]/"],
)
def test_loopback_http_is_allowed(url: str) -> None:
    assert require_https(url, "FHIR base URL", environ={}) == url


@pytest.mark.parametrize("url", ["ftp://host/x", "file:///etc/passwd", "https:///nohost", "x"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(InsecureUrlError):
        require_https(url, "FHIR base URL", environ={"FHIR_ALLOW_INSECURE_HTTP": "1"})


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(urls_module, "_warned", threading.Event())
    yield


def test_the_opt_in_allows_http_and_warns_once(
    fresh_warning: None, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"FHIR_ALLOW_INSECURE_HTTP": "1"}
    with caplog.at_level(logging.WARNING, logger="fhir_assets.fhir.urls"):
        for url in ("http://fhir.test/a", "http://fhir.test/b?q=secret-query"):
            assert require_https(url, "FHIR base URL", environ=env) == url
    warnings = [r for r in caplog.records if "FHIR_ALLOW_INSECURE_HTTP" in r.getMessage()]
    assert len(warnings) == 1 and "test servers only" in warnings[0].getMessage()
    assert "secret-query" not in caplog.text


@pytest.mark.parametrize("value", ["0", "true", "yes", ""])
def test_only_the_value_1_opts_in(value: str) -> None:
    with pytest.raises(InsecureUrlError):
        require_https(
            "http://fhir.test/", "FHIR base URL", environ={"FHIR_ALLOW_INSECURE_HTTP": value}
        )
