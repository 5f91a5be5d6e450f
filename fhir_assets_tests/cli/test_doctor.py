"""``fhir-assets doctor`` against the sandbox (every check passes) and broken configurations."""

from __future__ import annotations

from pathlib import Path

from fhir_assets.sandbox import Sandbox

from .conftest import Run


def _rows(stdout: str) -> dict[str, str]:
    """{check name: status} from the table (fix lines start with spaces)."""
    rows = {}
    for line in stdout.splitlines():
        if line[:4] in ("pass", "FAIL", "skip"):
            rows[line[6:].split("  ")[0].strip()] = line[:4]
    return rows


def test_doctor_passes_on_the_sandbox(run: Run, sandbox: Sandbox) -> None:
    done = run("doctor", env=sandbox.environment())
    assert done.returncode == 0, done.stdout + done.stderr
    names = ("configuration", "FHIR server", "server types", "SMART configuration", "token",
             "scopes", "search", "warehouse")  # fmt: skip
    assert _rows(done.stdout) == dict.fromkeys(names, "pass")
    assert "FHIR 4.0.1" in done.stdout


def test_doctor_prints_and_writes_the_line_selecting_the_servers_types(
    run: Run, sandbox: Sandbox, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("FHIR_BASE_URL=http://x\nFHIR_RESOURCE_TYPES=Patient\n")
    done = run("doctor", "--write-types", str(env_file), env=sandbox.environment())
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [w for w in done.stdout.split() if w.startswith("FHIR_RESOURCE_TYPES=")]
    offered = line.removeprefix("FHIR_RESOURCE_TYPES=").split(",")
    assert {"Patient", "Observation", "CarePlan", "Device"} <= set(offered)
    assert env_file.read_text() == f"FHIR_BASE_URL=http://x\n{line}\n"
    # the line is one FHIR_RESOURCE_TYPES accepts
    again = run("doctor", env=sandbox.environment() | {"FHIR_RESOURCE_TYPES": ",".join(offered)})
    assert f"{len(offered)} resource types selected" in again.stdout


def test_doctor_names_the_scope_and_warehouse_failures(
    run: Run, sandbox: Sandbox, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    env = sandbox.environment() | {
        "FHIR_SCOPES": "system/Patient.read",
        "FHIR_RESOURCE_TYPES": "Patient,Observation",
        "FHIR_DUCKDB_PATH": str(tmp_path / "a-file" / "warehouse.duckdb"),
    }
    done = run("doctor", env=env)
    assert done.returncode == 1
    rows = _rows(done.stdout)
    assert rows["token"] == "pass"
    assert rows["scopes"] == "FAIL"
    assert rows["warehouse"] == "FAIL"
    assert "missing scope system/Observation.read" in done.stdout
    assert str(tmp_path / "a-file") in done.stdout
    assert "2 check(s) failed: scopes, warehouse" in done.stderr


def test_doctor_stops_at_an_unreachable_server(run: Run, closed_port: int) -> None:
    done = run("doctor", env={"FHIR_BASE_URL": f"http://127.0.0.1:{closed_port}/fhir"})
    assert done.returncode == 1
    rows = _rows(done.stdout)
    assert rows["FHIR server"] == "FAIL"
    assert "token" not in rows
    assert "connection refused" in done.stdout
    assert "check the host and port of FHIR_BASE_URL" in done.stdout


def test_doctor_fails_a_bad_key_file_by_name(run: Run, sandbox: Sandbox, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not a key")
    done = run("doctor", env=sandbox.environment() | {"FHIR_PRIVATE_KEY_PATH": str(key)})
    assert done.returncode == 1
    assert _rows(done.stdout)["token"] == "FAIL"
    assert f"private key file {key}" in done.stdout
