"""Issue 23: one client per server, built once with the vendor profile applied, on every path.

A server on 127.0.0.1 that says it is Epic must see Epic's ``Epic-Client-ID`` header and Epic's
request rate (5/s) from ``fhir-assets sync`` and ``fhir-assets export``, Bulk exports must be
group-level, and the Dagster resource's ``get_client()`` (the raw assets, the bulk asset, the
export sensor and the write-back assets build their clients only there) must carry the same.
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

import fhir_assets
from fhir_assets.resources import FhirServerResource
from fhir_assets_tests.cli.conftest import CLI
from fhir_assets_tests.security.evil import EvilServer, evil_servers, json_route, reply

EPIC_METADATA = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
                 "kind": "instance", "status": "active", "format": ["json"],
                 "software": {"name": "Epic"}}  # fmt: skip
TOKEN = {"access_token": "t0k", "token_type": "bearer", "expires_in": 300, "scope": "system/*.read"}
PAGES = 12
LINE = b'{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2026-01-01T00:00:00Z"}}\n'


def epic(server: EvilServer) -> None:
    base = server.url

    def search(seen, h):  # type: ignore[no-untyped-def]
        n = int(seen.path.split("page=")[1]) if "page=" in seen.path else 0
        link = (
            []
            if n == PAGES - 1
            else [{"relation": "next", "url": f"{base}/fhir/Practitioner?page={n + 1}"}]
        )
        reply(h, 200, {"resourceType": "Bundle", "type": "searchset", "link": link,
                       "entry": [{"resource": {"resourceType": "Practitioner", "id": f"p{n}",
                                  "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}}]})  # fmt: skip

    output = [{"type": "Patient", "url": f"{base}/fhir/files/1", "count": 1}]
    manifest = {"transactionTime": "2026-01-02T00:00:00Z", "request": "x",
                "requiresAccessToken": True, "error": [], "output": output}  # fmt: skip
    server.route("/fhir/metadata", json_route(EPIC_METADATA))
    server.route("/token", json_route(TOKEN))
    server.route("/fhir/Practitioner", search)
    server.route(
        "/fhir/Group/g1/$export", json_route({}, 202, {"Content-Location": f"{base}/fhir/st"})
    )
    server.route("/fhir/st", lambda seen, h: reply(h, 200 if seen.method == "GET" else 202,
                                                   manifest, {}, "application/json"))  # fmt: skip
    server.route("/fhir/files/", lambda seen, h: reply(h, 200, LINE))


def environment(server: EvilServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    return env | {"FHIR_BASE_URL": f"{server.url}/fhir", "FHIR_CLIENT_ID": "app-7",
                  "FHIR_CLIENT_SECRET": "s3cret", "FHIR_TOKEN_URL": f"{server.url}/token",
                  "FHIR_SCOPES": "system/*.read"}  # fmt: skip


def fhir_requests(server: EvilServer, prefix: str) -> list:  # type: ignore[type-arg]
    return [s for s in server.seen if s.path.startswith(prefix)]


def test_cli_sync_sends_the_profile_header_at_the_profile_rate(tmp_path: Path) -> None:
    with evil_servers(1) as (server,):
        epic(server)
        env = environment(server) | {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
        done = subprocess.run([CLI, "sync", "--type", "Practitioner"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    searches = fhir_requests(server, "/fhir/Practitioner")
    assert len(searches) == PAGES
    assert {s.headers.get("Epic-Client-ID") for s in searches} == {"app-7"}
    # Epic's 5 requests/s: 12 searches (and the profile's metadata read) take 2 s at least
    assert searches[-1].at - searches[0].at >= 1.5


def test_cli_export_sends_the_profile_header_and_is_group_only(tmp_path: Path) -> None:
    with evil_servers(1) as (server,):
        epic(server)
        env = environment(server)
        argv = [CLI, "export", "--out", str(tmp_path / "a")]
        system = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        kicked_system = fhir_requests(server, "/fhir/$export")
        group = subprocess.run([CLI, "export", "--out", str(tmp_path / "b"), "--level", "group",
                                "--group", "g1"], env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=120)  # fmt: skip
    assert system.returncode != 0 and "group level" in system.stderr
    assert kicked_system == []  # refused before asking the server
    assert group.returncode == 0, group.stderr
    sent = [s for s in server.seen if s.path.startswith(("/fhir/Group", "/fhir/st", "/fhir/files"))]
    assert len(sent) >= 3
    assert {s.headers.get("Epic-Client-ID") for s in sent} == {"app-7"}


def test_doctor_searches_through_the_built_client_with_the_profile_header(tmp_path: Path) -> None:
    with evil_servers(1) as (server,):
        epic(server)
        env = environment(server) | {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
                                     "FHIR_RESOURCE_TYPES": "Practitioner"}  # fmt: skip
        done = subprocess.run([CLI, "doctor"], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(epic profile)" in done.stdout
    searches = fhir_requests(server, "/fhir/Practitioner")
    assert len(searches) == 1 and "_count=1" in searches[0].path
    assert searches[0].headers.get("Epic-Client-ID") == "app-7"
    assert searches[0].headers.get("Authorization") == "Bearer t0k"


def test_resource_get_client_carries_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    with evil_servers(1) as (server,):
        epic(server)
        resource = FhirServerResource(base_url=f"{server.url}/fhir", client_id="app-7",
                                      client_secret="s3cret", token_url=f"{server.url}/token",
                                      scopes="system/*.read")  # fmt: skip
        with resource.get_client() as client:
            assert client.profile is not None and client.profile.name == "epic"
            assert client.rate_limit is not None and client.rate_limit.requests_per_s == 5.0
            client.get("Practitioner")
    assert fhir_requests(server, "/fhir/Practitioner")[-1].headers.get("Epic-Client-ID") == "app-7"


PACKAGE = Path(fhir_assets.__file__).parent
# Every path that talks to the server, and how it gets its client.
PATHS = {
    "assets/raw.py": "get_client",  # raw sync
    "assets/bulk.py": "get_client",  # bulk asset
    "sensors.py": "get_client",  # export sensor
    "assets/writeback.py": "get_client",  # write-back
    "cli/sync.py": "connect",  # fhir-assets sync (build_client's first name)
    "cli/data.py": "connect",  # fhir-assets export
    "cli/doctor.py": "build_client",  # fhir-assets doctor
}


@pytest.mark.parametrize(("module", "factory"), PATHS.items())
def test_every_path_builds_its_client_with_the_factory(module: str, factory: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    calls = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert factory in calls
    assert "FhirClient" not in calls  # never a client built by hand, without its profile
