"""Export files as real servers write them, from the scripted Bulk Data server: deletion Bundles
and OperationOutcomes without ids, error files with wrong counts, truncated gzip data."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fhir_assets.fhir.bulk import ExportError, ExportRequest, run_export
from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply
from fhir_assets_tests.bulk.test_export_scripted import bulk_client, ndjson, outcome, patients

CLI = [sys.executable, "-m", "fhir_assets.cli", "export"]
# As the SMART reference server writes them: no id on the Bundle, none on the OperationOutcome.
DELETION = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [{"request": {"method": "DELETE", "url": "Patient/gone1"}}],
}


@pytest.fixture
def server() -> BulkServer:
    with BulkServer() as s:
        yield s


def incremental_manifest(server: BulkServer, error_count: int | None) -> dict:
    server.files |= {
        "p.ndjson": patients(2),
        "err.ndjson": ndjson([outcome("information", "informational", "1 resource skipped")]),
        "del.ndjson": ndjson([DELETION, DELETION]),
    }
    manifest = server.manifest([("Patient", "p.ndjson", 2)])
    error = {"type": "OperationOutcome", "url": server.file_url("err.ndjson")}
    manifest["error"] = [error | ({"count": error_count} if error_count is not None else {})]
    manifest["deleted"] = [{"type": "Bundle", "url": server.file_url("del.ndjson"), "count": 2}]
    return manifest


def test_deletion_bundles_and_outcomes_without_ids_are_no_bad_lines(
    server: BulkServer, tmp_path: Path
) -> None:
    server.status = [Reply(200, incremental_manifest(server, None))]
    argv = [*CLI, "--out", str(tmp_path / "x"), "--since", "2026-01-01T00:00:00Z"]
    run = subprocess.run(
        argv, env=os.environ | {"FHIR_BASE_URL": server.url}, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "without an id" not in run.stderr
    assert "Patient                              2" in run.stdout


def test_an_error_file_count_mismatch_is_a_warning_and_the_job_is_deleted(
    server: BulkServer, tmp_path: Path
) -> None:
    server.status = [Reply(200, incremental_manifest(server, 38))]
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    assert result.counts() == {"Patient": 2}
    assert "error file error/00001.OperationOutcome.ndjson: 1 lines, the manifest says 38" in (
        result.warnings
    )
    assert result.bad_lines() == [] and result.fatal == ()
    assert server.paths("DELETE") == ["/fhir/status"]


def test_truncated_gzip_data_is_downloaded_again(server: BulkServer, tmp_path: Path) -> None:
    whole = gzip.compress(patients(300))
    server.files["p.ndjson.gz"] = whole
    server.first_bodies["p.ndjson.gz"] = [whole[: len(whole) // 2]]
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson.gz", 300)]))]
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    (path,) = [p for _, p in result.output_files()]
    assert path.read_bytes() == patients(300)
    assert len([s for s in server.seen if s.path.startswith("/files/")]) == 2
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".part", ".gunzip")]


def test_gzip_data_truncated_every_time_names_the_file_and_leaves_nothing_half_done(
    server: BulkServer, tmp_path: Path
) -> None:
    whole = gzip.compress(patients(300))
    server.files["p.ndjson.gz"] = whole[: len(whole) // 2]
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson.gz", 300)]))]
    with pytest.raises(ExportError, match=r"p\.ndjson\.gz failed 3 times.*00000\.Patient\.ndjson"):
        run_export(bulk_client(server, attempts=2), ExportRequest(), tmp_path)
    assert not [p for p in (tmp_path / "output").rglob("*") if p.is_file()]


def test_odd_but_valid_line_ends_are_no_bad_lines(server: BulkServer, tmp_path: Path) -> None:
    # a UTF-8 BOM first (some .NET/Windows writers), CRLF, blank lines, no final newline:
    # every resource counts, none is reported bad (landing skips the BOM too)
    lines = patients(3).split(b"\n")
    body = b"\xef\xbb\xbf" + lines[0] + b"\r\n" + lines[1] + b"\r\n\r\n" + lines[2]
    server.files["p.ndjson"] = body
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 3)]))]
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    assert result.counts() == {"Patient": 3}
    assert result.bad_lines() == []


def test_a_non_utf8_line_is_reported_with_its_number(server: BulkServer, tmp_path: Path) -> None:
    body = patients(1) + b'{"resourceType":"Patient","id":"\xff\xfe"}\n' + patients(1)
    server.files["p.ndjson"] = body
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 3)]))]
    result = run_export(bulk_client(server), ExportRequest(), tmp_path)
    ((_name, line, reason),) = result.bad_lines()
    assert (line, reason.split(" (")[0]) == (2, "not JSON")


def test_the_line_bound_is_the_landings_setting(server: BulkServer, tmp_path: Path) -> None:
    """A line is bad for the export exactly when the landing would quarantine it unread
    (FHIR_MAX_LINE_BYTES, as raised or lowered by the user), in the library, the bulk resource
    and the ``export`` command."""
    from fhir_assets.assets.defs import build_bulk_defs
    from fhir_assets.settings import Settings

    wide = b'{"resourceType":"Patient","id":"w","text":"' + b"x" * 3000 + b'"}\n'
    server.files["p.ndjson"] = patients(1) + wide + patients(1)
    server.status = [Reply(200, server.manifest([("Patient", "p.ndjson", 3)]))] * 3
    narrow = run_export(bulk_client(server, max_line_bytes=2048), ExportRequest(), tmp_path / "a")
    ((_name, line, reason),) = narrow.bad_lines()
    size = len(wide) - 1  # without its newline
    assert (line, reason) == (2, f"a line of {size} bytes, longer than 2048 (not read whole)")
    roomy = run_export(bulk_client(server, max_line_bytes=4096), ExportRequest(), tmp_path / "b")
    assert roomy.bad_lines() == []

    env = {"FHIR_BASE_URL": server.url, "FHIR_MAX_LINE_BYTES": "2048", "FHIR_PARTITIONS": "none"}
    resources = build_bulk_defs(Settings.from_environ(env)).resources
    assert resources["bulk"].options().max_line_bytes == 2048
    argv = [*CLI, "--out", str(tmp_path / "c"), "--base-url", server.url]
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ | env, check=False)
    assert "longer than 2048" in done.stdout + done.stderr, done.stdout + done.stderr
