"""``fhir-assets export`` as a user runs it: a subprocess, killed with SIGKILL mid-download and
started again on the same folder, ends with exactly the server's data and one kick-off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from fhir_assets.fhir.bulk.state import ExportState
from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.bulk.conftest import SCOPE, by_key, read_export, searched
from fhir_assets_tests.proxy import Fault, FaultProxy

TYPES = ["Patient", "Encounter", "Observation", "Condition", "Procedure"]
CLI = [sys.executable, "-m", "fhir_assets.cli", "export"]


def export(env: dict[str, str], out: Path) -> subprocess.Popen[str]:
    argv = [*CLI, "--out", str(out), "--type", ",".join(TYPES), "--max-connections", "1"]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def files_done(out: Path) -> int:
    """Finished files the state records (its file and its journal, as a rerun reads them)."""
    try:
        return len(ExportState.load(out).done)
    except (FileNotFoundError, orjson.JSONDecodeError):
        return 0


def test_export_killed_mid_download_resumes_without_a_second_kickoff(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    with FaultProxy(sandbox.base_url, seed=2) as proxy:
        slow = proxy.add(Fault("slow", delay_s=1.0, path_contains="bulk-files"))
        # The token endpoint is reached directly: an assertion's audience is the real endpoint.
        via_proxy = {"FHIR_BASE_URL": proxy.url, "FHIR_TOKEN_URL": sandbox.token_url}
        env = os.environ | sandbox.environment() | via_proxy | {"FHIR_SCOPES": SCOPE}
        first = export(env, out)
        deadline = time.monotonic() + 120  # a CLI start, a kick-off and two files, under load
        while files_done(out) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        assert first.returncode == -signal.SIGKILL
        assert 2 <= files_done(out) < len(TYPES)
        slow.delay_s = 0
        second = export(env, out)
        stdout, stderr = second.communicate(timeout=120)
        kickoffs = [s for m, p, s in proxy.requests if p.endswith("$export")]
        deletes = [s for m, p, s in proxy.requests if m == "DELETE"]
    assert second.returncode == 0, stderr
    assert "resuming the export" in stderr
    assert kickoffs == [202] and deletes == [202]
    exported = by_key(read_export([(t, p) for p in sorted((out / "output").glob("*.ndjson"))
                                   for t in [p.name.split(".")[1]]]))  # fmt: skip
    assert exported == searched(sandbox, TYPES)
    counts = dict(line.split() for line in stdout.splitlines() if line.split()[0] in TYPES)
    assert {t: int(n) for t, n in counts.items()} == sandbox.counts(TYPES)
    assert not list(out.rglob("*.part"))


def test_export_again_on_a_finished_folder_does_not_kick_off(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = os.environ | sandbox.environment() | {"FHIR_SCOPES": SCOPE}
    runs = [export(env, tmp_path).communicate(timeout=120) for _ in range(2)]
    assert runs[0][0] == runs[1][0] and "Patient" in runs[0][0]
    assert "already holds this finished export" in runs[1][1]


def test_export_into_a_folder_of_another_export_is_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = os.environ | sandbox.environment() | {"FHIR_SCOPES": SCOPE}
    export(env, tmp_path).communicate(timeout=120)
    other = subprocess.run(
        [*CLI, "--out", str(tmp_path), "--type", "Patient"], env=env, capture_output=True, text=True
    )
    assert other.returncode == 1
    assert "holds a different export" in other.stderr


def test_cancel_deletes_the_job_recorded_in_the_folder(tmp_path: Path) -> None:
    from fhir_assets.fhir.bulk import ExportJob, ExportRequest, ExportState
    from fhir_assets_tests.bulk.bulk_server import BulkServer

    with BulkServer() as server:
        state = ExportState(tmp_path, ExportRequest(), ExportJob(server.url + "/status", 1.0))
        state.save()
        env = os.environ | {"FHIR_BASE_URL": server.url}
        argv = [*CLI, "--out", str(tmp_path), "--cancel"]
        runs = [subprocess.run(argv, env=env, capture_output=True, text=True) for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["export job deleted", "no open job"]
    assert server.paths("DELETE") == ["/fhir/status"]


def test_export_authenticates_with_the_key_text_like_the_assets(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """FHIR_PRIVATE_KEY (the key's text, no file) works for `export` as for the assets."""
    env = os.environ | sandbox.environment() | {"FHIR_SCOPES": SCOPE}
    env["FHIR_PRIVATE_KEY"] = Path(env.pop("FHIR_PRIVATE_KEY_PATH")).read_text()
    argv = [*CLI, "--out", str(tmp_path), "--type", "Patient"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    counts = dict(line.split() for line in done.stdout.splitlines() if line.startswith("Patient"))
    assert int(counts["Patient"]) == sandbox.counts(["Patient"])["Patient"]
    assert "BEGIN" not in done.stdout + done.stderr  # the key is never echoed
