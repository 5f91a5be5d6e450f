"""Issue 23 finding 6: ``fhir-assets export`` stops within 5 s of SIGTERM or Ctrl-C while a
server trickles a file, keeps its state, and a rerun resumes (nothing done twice); finished files
are journalled in O(1) each."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from fhir_assets.fhir.bulk.state import JOURNAL_FILE, STATE_FILE, ExportState, FileDone
from fhir_assets_tests.cli.conftest import CLI
from fhir_assets_tests.security.evil import evil_servers, json_route, reply, trickle, wait_until

LINE = b'{"resourceType":"Patient","id":"p%d","meta":{"lastUpdated":"2026-01-01T00:00:00Z"}}\n'
CAPABILITY = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "kind": "instance",
              "status": "active", "format": ["json"], "software": {"name": "evil"}}  # fmt: skip


def manifest(base: str) -> dict[str, object]:
    files = [
        {"type": "Patient", "url": f"{base}/files/{n}", "count": 1} for n in ("a", "slow", "b")
    ]
    return {"transactionTime": "2026-01-02T00:00:00Z", "request": f"{base}/fhir/$export",
            "requiresAccessToken": False, "output": files, "error": []}  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_export_stops_promptly_on_a_signal_and_a_rerun_resumes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "export"
    slow = {"trickle": True}
    with evil_servers(1) as (server,):
        base = server.url
        server.route("/fhir/metadata", json_route(CAPABILITY))
        server.route("/fhir/$export", json_route({}, 202, {"Content-Location": f"{base}/st"}))
        server.route("/st", lambda seen, h: reply(h, 200, manifest(base), {}, "application/json"))
        server.route("/files/a", lambda seen, h: reply(h, 200, LINE % 1))
        server.route("/files/b", lambda seen, h: reply(h, 200, LINE % 2))

        def slow_file(seen, h):  # type: ignore[no-untyped-def]
            if slow["trickle"]:
                trickle(h, server.stop, LINE % 3, 20.0)  # one byte every 20 s
            else:
                rest = (LINE % 3)[int(seen.headers.get("Range", "bytes=0-")[6:-1] or 0) :]
                reply(h, 206 if "Range" in seen.headers else 200, rest,
                      {"Content-Range": f"bytes {len(LINE % 3) - len(rest)}-"})  # fmt: skip

        server.route("/files/slow", slow_file)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
        env |= {"FHIR_BASE_URL": f"{base}/fhir", "FHIR_SERVER_PROFILE": "generic"}
        command = [CLI, "export", "--out", str(out), "--max-connections", "2"]
        child = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)  # fmt: skip
        try:
            got_slow = lambda: any(s.path == "/files/slow" for s in server.seen)  # noqa: E731
            assert wait_until(got_slow, 120), "the export never asked for the slow file"
            part = out / "output" / "00001.Patient.ndjson.part"
            assert wait_until(part.exists, 120)
            time.sleep(0.5)
            child.send_signal(sig)
            started = time.monotonic()
            child.wait(timeout=60)
            stopped_s = time.monotonic() - started
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        # about a second unloaded (issue 23 asks for 5 s); 15 leaves room for a loaded machine
        # and still fails an export that waits for the trickle's next byte (every 20 s)
        assert stopped_s < 15, f"export took {stopped_s:.1f}s to stop"
        assert child.returncode != 0
        state = ExportState.load(out)
        assert state.job is not None and state.manifest is not None and not state.finished
        slow["trickle"] = False
        again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    kickoffs = [s for s in server.seen if s.path.startswith("/fhir/$export")]
    assert len(kickoffs) == 1  # resumed, not kicked off again
    assert (out / "output" / "00001.Patient.ndjson").read_bytes() == LINE % 3
    # the files finished before the signal were journalled: the rerun does not fetch them again
    assert [sum(s.path == p for s in server.seen) for p in ("/files/a", "/files/b")] == [1, 1]


def test_finished_files_are_journalled_and_compacted(tmp_path: Path) -> None:
    state = ExportState(tmp_path)
    state.save()
    for i in range(3):
        state.mark_done(FileDone(f"output/{i:05d}.Patient.ndjson", "Patient", "output", 10, 1))
    saved = orjson.loads((tmp_path / STATE_FILE).read_bytes())
    assert saved["done"] == []  # the state file is not rewritten per file
    assert len((tmp_path / JOURNAL_FILE).read_bytes().splitlines()) == 3
    with (tmp_path / JOURNAL_FILE).open("ab") as journal:
        journal.write(b'{"name": "cut by a cra')  # a crash mid-line
    assert len(ExportState.load(tmp_path).done) == 3
    state.save()  # compaction
    assert not (tmp_path / JOURNAL_FILE).exists()
    assert len(ExportState.load(tmp_path).done) == 3
