"""Issue 23 finding 4 (landing): an over-long NDJSON line is quarantined with its line number
(``FHIR_MAX_LINE_BYTES``), its neighbours land, and memory stays flat; a truncated gzip file's
message says what really landed (finding 7)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from fhir_assets.warehouse.batches import Block, OverlongLine
from fhir_assets.warehouse.inputs import ndjson_blocks, ndjson_entries
from fhir_assets_tests.cli.conftest import Run, run  # noqa: F401 - fixture


def patient(pid: str, pad: int = 0) -> bytes:
    body = {"resourceType": "Patient", "id": pid, "meta": {"versionId": "1",
            "lastUpdated": "2026-01-01T00:00:00Z"}, "text": {"div": "x" * pad}}  # fmt: skip
    return orjson.dumps(body) + b"\n"


def write_long(path: Path, long_bytes: int) -> None:
    with path.open("wb") as out:
        out.write(patient("a"))
        out.write(b'{"resourceType":"Patient","id":"huge","text":{"div":"')
        chunk = b"y" * (1 << 20)
        for _ in range(long_bytes // len(chunk)):
            out.write(chunk)
        out.write(b'"}}\n')
        out.write(patient("b"))


@pytest.mark.parametrize("size", [4096, 1 << 16, 8_000_000])
def test_blocks_split_around_an_overlong_line(tmp_path: Path, size: int) -> None:
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(patient("a") + patient("b", 5000) + b"\n" + patient("c") + patient("d"))
    items = list(ndjson_blocks(path, size=size, max_line_bytes=2000))
    long = [(i[1], i[2]) for i in items if not isinstance(i, Block)]
    assert [(n, type(p)) for n, p in long] == [(2, OverlongLine)]
    lines = b"".join(i.data for i in items if isinstance(i, Block))
    assert lines.split(b"\n")[:-1] == [patient("a")[:-1], b"", patient("c")[:-1], patient("d")[:-1]]
    firsts = [i.first_line for i in items if isinstance(i, Block)]
    assert firsts[0] == 1 and all(f in (1, 3) for f in firsts)


def test_entries_skip_an_overlong_line(tmp_path: Path) -> None:
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(patient("a") + patient("b", 5000) + patient("c"))
    got = [(n, type(p).__name__) for _, n, p in ndjson_entries(path, max_line_bytes=2000)]
    assert got == [(1, "bytes"), (2, "OverlongLine"), (3, "bytes")]


def test_land_quarantines_an_overlong_line_and_lands_its_neighbours(
    run: Run,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    write_long(folder / "Patient.ndjson", 3 << 20)
    done = run("land", str(folder), env={"FHIR_MAX_LINE_BYTES": str(1 << 20)})
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        ids = db.execute("SELECT id FROM fhir_raw.patient ORDER BY id").fetchall()
        [(line, error, raw)] = db.execute(
            "SELECT line, error, raw FROM fhir_raw._quarantine"
        ).fetchall()
    assert ids == [("a",), ("b",)]
    assert line == 2 and "FHIR_MAX_LINE_BYTES=1048576" in error
    assert len(raw) <= 1024


def test_a_real_sized_attachment_line_lands_by_default(run: Run, tmp_path: Path) -> None:  # noqa: F811
    # valid but unusual: a 20 MB DocumentReference-sized line (an inline scanned document)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes(patient("a") + patient("big", 20 << 20))
    done = run("land", str(folder))
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute("SELECT COUNT(*) FROM fhir_raw.patient").fetchone() == (2,)


PEAK = """
import resource, sys
from typer.testing import CliRunner
from fhir_assets.cli import app
result = CliRunner().invoke(app, ["land", sys.argv[1]])
assert result.exit_code == 0, result.output
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_mb(folder: Path, tmp_path: Path, name: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    env |= {"FHIR_DUCKDB_PATH": str(tmp_path / f"{name}.duckdb"), "FHIR_MAX_LINE_BYTES": "1048576"}
    out = subprocess.run([sys.executable, "-c", PEAK, str(folder)], capture_output=True,
                         text=True, env=env, timeout=300, check=True)  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


def test_memory_stays_flat_with_a_huge_line(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    write_long(small / "Patient.ndjson", 2 << 20)
    write_long(big / "Patient.ndjson", 160 << 20)
    grown = peak_mb(big, tmp_path, "big") - peak_mb(small, tmp_path, "small")
    assert grown < 60, f"peak memory grew {grown} MB with a 160 MB line"


def test_truncated_gzip_message_says_what_landed(run: Run, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "export"
    folder.mkdir()
    whole = gzip.compress(b"".join(patient(f"p{i}") for i in range(2000)))
    (folder / "Patient.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    done = run("land", str(folder))
    assert "the lines before the damage were landed" not in done.stdout + done.stderr
    assert "none of its lines landed" in done.stdout + done.stderr
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        tables = db.execute("SELECT table_name FROM information_schema.tables").fetchall()
        landed = db.execute("SELECT COUNT(*) FROM fhir_raw.patient").fetchone() if (
            ("patient",) in tables) else (0,)  # fmt: skip
    assert landed == (0,)
