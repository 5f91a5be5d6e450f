"""Streaming NDJSON reading: lines across chunk boundaries, bad lines kept, tombstones, a
leading BOM skipped, an endless line never held whole."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fhir_assets.fhir.ndjson import (
    BadLine,
    LongLine,
    Record,
    Tombstone,
    count,
    lines,
    parse,
    scan,
    tombstones,
)


@pytest.mark.parametrize("chunk_bytes", [1, 7, 1 << 20])
def test_lines_are_the_same_whatever_the_chunk_size(tmp_path: Path, chunk_bytes: int) -> None:
    path = tmp_path / "f.ndjson"
    path.write_bytes(b'{"a":1}\r\n\n{"b":2}\n{"c":3}')
    assert list(lines(path, chunk_bytes=chunk_bytes)) == [
        (1, b'{"a":1}'),
        (3, b'{"b":2}'),
        (4, b'{"c":3}'),
    ]


def test_parse_keeps_every_unusable_line_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "Patient.ndjson"
    rows = [
        b'{"resourceType":"Patient","id":"a"}',
        b'{"resourceType":"Patient","id":',
        b'{"resourceType":"Observation","id":"o"}',
        b"[1,2]",
        b'{"resourceType":"Patient"}',
    ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    items = list(parse(path, "Patient"))
    assert isinstance(items[0], Record) and items[0].resource["id"] == "a"
    bad = [(i.line, i.reason.split(" (")[0], i.raw) for i in items if isinstance(i, BadLine)]
    assert bad == [
        (2, "not JSON", rows[1]),
        (3, "a Observation in a Patient file", rows[2]),
        (4, "not a FHIR resource", rows[3]),
        (5, "Patient without an id", rows[4]),
    ]
    assert count(path) == len(rows)


def test_tombstones_come_from_delete_entries(tmp_path: Path) -> None:
    path = tmp_path / "deleted.ndjson"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Patient/p1"}},
            {"request": {"method": "PUT", "url": "Patient/p2"}},
        ],
    }
    path.write_bytes(orjson.dumps(bundle) + b"\n")
    found = list(tombstones(path))
    assert found[0] == Tombstone("Patient", "p1", path, 1)
    assert isinstance(found[1], BadLine) and found[1].line == 1


@pytest.mark.parametrize("chunk_bytes", [1, 7, 4096, 1 << 20])
def test_a_line_past_the_bound_comes_as_its_head_whatever_the_chunk_size(
    tmp_path: Path, chunk_bytes: int
) -> None:
    # a server's endless line (a 20 GB file within FHIR_MAX_FILE_BYTES) was held whole, and
    # re-copied per chunk: memory and time grew without bound before a line was yielded
    path = tmp_path / "f.ndjson"
    long = b'{"resourceType":"Patient","id":"' + b"x" * 3000 + b'"}'
    path.write_bytes(b'{"a":1}\n' + long + b'\r\n{"b":2}\n' + long)
    head = LongLine(len(long) + 1, long[:1024])  # the size counts its \r
    assert list(lines(path, chunk_bytes=chunk_bytes, max_line_bytes=2000)) == [
        (1, b'{"a":1}'), (2, head), (3, b'{"b":2}'), (4, LongLine(len(long), long[:1024])),
    ]  # fmt: skip


def test_an_over_long_line_is_a_bad_line_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "Patient.ndjson"
    with path.open("wb") as out:
        out.write(b'{"resourceType":"Patient","id":"a"}\n')
        for _ in range(65):  # 65 MiB, past the 64 MiB default
            out.write(b"x" * (1 << 20))
        out.write(b'\n{"resourceType":"Patient","id":"b"}\n')
    total, bad = scan(path, "Patient")
    assert total == 3
    assert [(b.line, b.reason.split(",")[0], len(b.raw)) for b in bad] == [
        (2, f"a line of {65 << 20} bytes", 1024)
    ]


def test_a_bom_starting_a_file_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"resourceType":"Patient","id":"a"}\n')
    assert scan(path, "Patient") == (1, [])
