"""The bad-input corpus: what lands and what is quarantined (line, reason), pinned.

The expected table was taken from main before issue #26 (the msgspec line reader); any other
reader of NDJSON files (DuckDB's, Snowflake's COPY) must give the same table, plain or gzip.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from fhir_assets.warehouse.inputs import ndjson_blocks
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.resources import DuckDBWarehouseResource

from .helpers import SERVER, at, current, quarantine

DEEP = b"[" * 1100 + b"]" * 1100
CORPUS: list[bytes] = [
    b'\xef\xbb\xbf{"resourceType":"Patient","id":"p1"}',  # a BOM first
    b"",
    b"  \t",
    b'{"resourceType":"Patient","id":"p2"}\r',  # CRLF
    b'{"resourceType":"Patient","id":"p3","x":NaN}',
    b'{"resourceType":"Patient","id":"p4","x":-Infinity}',
    b'{"resourceType":"Patient","id":"p5","x":[1,]}',
    b'{"resourceType":"Patient","id":"p6","x":{"a":1 , }}',
    b'{"resourceType":"Patient","id":"p7","id":"not an id!"}',  # a repeated key: the last counts
    b'{"resourceType":"Observation","resourceType":"Patient","id":"p8"}',
    b'{"resourceType":"Patient","id":"p9","x":' + DEEP + b"}",
    b'{"resourceType":"Patient","id":"p10","x":"\xff"}',  # not UTF-8
    b'{"resourceType":"Patient","id":"p11","x":"a\x01b"}',  # a raw control character
    b'{"resourceType":"Patient",\r"id":"p12"}',  # a \r as JSON whitespace inside the line
    b"[1]",
    b'"Patient"',
    b'{"resourceType":"Observation","id":"o1"}',
    b'{"resourceType":"Patient","id":"a b"}',
    b'{"resourceType":"Patient"}',
    b'{"resourceType":"Patient","id":"p13","meta":"x"}',
    b'{"resourceType":"Patient","id":"p14","meta":{"versionId":1}}',
    b'{"resourceType":"Patient","id":"p15","meta":{"lastUpdated":"2025-01-01T00:00:00"}}',
    b'{"resourceType":"Patient","id":"p16","meta":{"lastUpdated":"2025-02-30T00:00:00Z"}}',
    b'{"resourceType":"Patient","id":"p17","x":1e999}',
    b'{"resourceType":"Patient","id":"p18","x":"\\ud800"}',
    b'{"resourceType":"Patient","id":"p19"} // a comment',
    b'{"resourceType":"Patient","id":"p20"',
    b'{"resourceType":"Bundle","type":"collection","entry":[{"request":'
    b'{"method":"DELETE","url":"Patient/p99"}}]}',
    b'{"resourceType":"Patient","id":"p21","meta":{"versionId":"1","versionId":"x y"}}',
    b'{"resourceType":"Patient","id":"p22","x":"\\u0041"}',
    b'{"resourceType":"Patient","id":"p23"}',  # no final newline
]
LANDED = ["p1", "p12", "p17", "p2", "p22", "p23", "p8", "p99"]  # p99: the tombstone
QUARANTINED: list[tuple[int, str]] = [
    (5, "not JSON: JSON is malformed: invalid character (byte 40)"),
    (6, "not JSON: JSON is malformed: invalid character (byte 41)"),
    (7, "not JSON: JSON is malformed: trailing comma in array (byte 43)"),
    (8, "not JSON: JSON is malformed: trailing comma in object (byte 49)"),
    (9, "id is missing or not a FHIR id ([A-Za-z0-9-.]{1,64})"),
    (11, "not JSON this parser reads: nested too deeply"),
    (12, "not JSON: not UTF-8 (invalid start byte at byte 42)"),
    (13, "not JSON: JSON is malformed: invalid character (byte 43)"),
    (15, "not a JSON object but a JSON list"),
    (16, "not a JSON object but a JSON str"),
    (17, "resourceType is 'Observation', expected 'Patient'"),
    (18, "id is missing or not a FHIR id ([A-Za-z0-9-.]{1,64})"),
    (19, "id is missing or not a FHIR id ([A-Za-z0-9-.]{1,64})"),
    (20, "meta is not a JSON object"),
    (21, "meta.versionId is not a FHIR id"),
    (22, "meta.lastUpdated is not a FHIR instant (YYYY-MM-DDThh:mm:ss[.s]+zz:zz)"),
    (23, "meta.lastUpdated is not a valid date and time: day is out of range for month"),
    (25, "not JSON: Input data was truncated"),
    (26, "not JSON: JSON is malformed: trailing characters (byte 39)"),
    (27, "not JSON: Input data was truncated"),
    (29, "meta.versionId is not a FHIR id"),
]


@pytest.mark.parametrize("compressed", [False, True])
def test_the_bad_input_corpus_lands_and_quarantines_as_pinned(
    duckdb_resource: DuckDBWarehouseResource, tmp_path: Path, compressed: bool
) -> None:
    data = b"\n".join(CORPUS)
    path = tmp_path / ("Patient.ndjson.gz" if compressed else "Patient.ndjson")
    path.write_bytes(gzip.compress(data) if compressed else data)
    with duckdb_resource.open_warehouse() as warehouse:
        provenance = Provenance(SERVER, "s", at(1))
        result = land(warehouse, "Patient", ndjson_blocks(path, "f"), provenance)
        landed = [row[0] for row in current(warehouse)]
        bad = [(row[2], row[3]) for row in quarantine(warehouse)]
    assert landed == LANDED
    assert sorted(bad) == QUARANTINED
    assert (result.seen, result.landed, result.deleted, result.quarantined) == (29, 7, 1, 21)
