"""Every user-facing failure: one or two lines naming what failed and the fix, exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.scripted_server import Reply, scripted_server

from .conftest import Run


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("command", [["auth", "check"], ["export", "--out", "exp"]])
def test_wrong_base_path_says_the_path_is_wrong(
    run: Run, sandbox: Sandbox, command: list[str]
) -> None:
    env = sandbox.environment() | {"FHIR_BASE_URL": sandbox.base_url + "/wrong"}
    done = run(*command, env=env)
    assert done.returncode == 1
    lines = _lines(done.stderr)
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith(f"error: no FHIR server at {sandbox.base_url}/wrong: GET ")
    assert "FHIR_BASE_URL must be the FHIR base" in lines[1]
    assert "FHIR_TOKEN_URL" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["auth", "check"], ["export", "--out", "exp"]])
def test_unreachable_host_says_so(run: Run, closed_port: int, command: list[str]) -> None:
    url = f"http://127.0.0.1:{closed_port}/fhir"
    done = run(*command, env={"FHIR_BASE_URL": url})
    assert done.returncode == 1
    lines = _lines(done.stderr)
    assert lines[0] == f"error: cannot reach {url}/metadata (connection refused)"
    assert "check the host and port of FHIR_BASE_URL" in lines[1]
    assert len(lines) == 2


@pytest.mark.parametrize("command", [["auth", "check"], ["export", "--out", "exp"]])
def test_web_page_without_a_client_is_not_a_fhir_server(run: Run, command: list[str]) -> None:
    def web_page(method: str, path: str) -> Reply:
        return Reply(200, b"<html>welcome</html>", "text/html")

    with scripted_server(web_page) as (base, _):
        done = run(*command, env={"FHIR_BASE_URL": base})
    assert done.returncode == 1
    lines = _lines(done.stderr)
    assert lines[0] == f"error: {base} is not a FHIR server: GET {base}/metadata answered text/html"
    assert len(lines) == 2
    assert "nothing to check" not in done.stdout
    assert "(HTTP 200): OK" not in done.stderr


@pytest.mark.parametrize("content", ["not a key\n", None])
@pytest.mark.parametrize("command", [["auth", "check"], ["export", "--out", "exp"]])
def test_bad_key_file_is_named(
    run: Run, sandbox: Sandbox, tmp_path: Path, content: str | None, command: list[str]
) -> None:
    key = tmp_path / "client-key.pem"
    if content is not None:
        key.write_text(content)
    done = run(*command, env=sandbox.environment() | {"FHIR_PRIVATE_KEY_PATH": str(key)})
    assert done.returncode == 1
    lines = _lines(done.stderr)
    assert lines[0].startswith(f"error: private key file {key}: "), done.stderr
    assert "fhir-assets keys generate" in lines[1]
    assert len(lines) == 2


def test_debug_shows_the_traceback(run: Run, closed_port: int) -> None:
    env = {"FHIR_BASE_URL": f"http://127.0.0.1:{closed_port}/fhir"}
    done = run("--debug", "auth", "check", env=env)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "CliError: cannot reach" in done.stderr


def test_export_from_the_sandbox_warns_once_about_the_refused_delete(
    run: Run, sandbox: Sandbox
) -> None:
    # The sandbox client asks for system/*.read, which sekmet does not let DELETE a job.
    done = run("export", "--out", "exp", "--type", "Patient", env=sandbox.environment())
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "DELETE" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: the server refused to DELETE export job ")
    assert "HTTP 403" in warnings[0]
    assert "Patient" in done.stdout


def test_version(run: Run) -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("fhir-assets ")


@pytest.mark.parametrize("command", [["doctor"], ["auth", "check"], ["export", "--out", "exp"]])
def test_plain_http_to_another_host_is_refused_before_any_request(
    run: Run, command: list[str]
) -> None:
    # 192.0.2.1 is TEST-NET-1: nothing answers there, so a request would hang until its timeout.
    done = run(*command, env={"FHIR_BASE_URL": "http://192.0.2.1/fhir"}, timeout=30)
    assert done.returncode == 1
    said = done.stdout + done.stderr  # doctor puts it in its table, the others as the error
    assert "refusing plain http for FHIR base URL http://192.0.2.1/fhir" in said, said
    assert "FHIR_ALLOW_INSECURE_HTTP=1" in said
    assert "did not answer" not in done.stderr and "cannot reach" not in done.stderr


def test_a_locked_warehouse_names_its_holder_and_no_debug_hint(
    run: Run, sandbox: Sandbox, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "warehouse.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        env = sandbox.environment() | {"FHIR_DUCKDB_LOCK_WAIT_S": "1"}
        done = run("sync", "--type", "Patient", env=env)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    lines = _lines(done.stderr)
    assert any(f"in use by process {holder.pid}" in line for line in lines), done.stderr
    assert "--debug" not in done.stderr and "Traceback" not in done.stderr


HOLD = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""
