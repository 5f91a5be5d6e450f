"""The fast path: JSON lines checked in DuckDB's SQL, Python's check() as the authority."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest

from fhir_assets.warehouse.batches import Block, block_batch
from fhir_assets.warehouse.files import land_folder, plan_folder
from fhir_assets.warehouse.landing import (
    SWITCH_INTERVAL,
    SWITCH_INTERVAL_S,
    LandingOptions,
    land,
    recheck,
)
from fhir_assets.warehouse.lines import checked_rows
from fhir_assets.warehouse.protocol import Provenance
from fhir_assets.warehouse.resources import DuckDBWarehouseResource
from fhir_assets.warehouse.tombstones import Tombstone
from fhir_assets.warehouse.validation import ResourceError, check

from .helpers import SERVER, at, current, lines, patient, quarantine

# Lines the SQL must judge exactly as check() does (value, ok?).
AGREED: list[tuple[str, bool]] = [
    ('{"resourceType":"Patient","id":"p-1.a","meta":{"versionId":"3","lastUpdated":'
     '"2025-01-01T00:00:00.123456789+14:00"}}', True),
    ('{"resourceType":"Patient","id":"p"}', True),
    ('{"resourceType":"Patient","id":"p","meta":null}', True),
    ('{"resourceType":"Patient","id":"p","meta":{}}', True),
    ('{"resourceType":"Patient","id":"p","meta":{"versionId":null,"lastUpdated":null}}', True),
    ('{"resourceType" : "Patient" , "id" : "p" , "meta" : {"versionId" : "1"}}', True),
    ('{"resourceType":"Pati\\u0065nt","id":"p\\u0031"}', True),  # DuckDB decodes escapes too
    ('{"resourceType":"Patient","id":"' + "a" * 64 + '"}', True),
    ('{"resourceType":"Patient","id":"' + "a" * 65 + '"}', False),
    ('{"resourceType":"Patient","id":"a b"}', False),
    ('{"resourceType":"Patient","id":5}', False),
    ('{"resourceType":"Patient","id":null}', False),
    ('{"resourceType":"Patient"}', False),
    ('{"resourceType":"Observation","id":"p"}', False),
    ('{"resourceType":"patient","id":"p"}', False),
    ('{"id":"p"}', False),
    ('{"resourceType":"Patient","id":"p","meta":[]}', False),
    ('{"resourceType":"Patient","id":"p","meta":5}', False),
    ('{"resourceType":"Patient","id":"p","meta":[{"versionId":"1"}]}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"versionId":1}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"versionId":"1 2"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2025-01-01"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2025-01-01T00:00:00"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2025-01-01T24:00:00Z"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2025-01-01T23:59:60Z"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"0000-01-01T00:00:00Z"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2025-02-30T00:00:00Z"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2025-01-01 00:00:00Z"}}', False),
    ('{"resourceType":"Patient","id":"p","meta":{"lastUpdated":20250101}}', False),
    ('[{"resourceType":"Patient","id":"p"}]', False),
    ('"Patient"', False),
    ("7", False),
    ("null", False),
    # a repeated key: orjson (and so check()) reads the last value
    ('{"resourceType":"Patient","resourceType":"Observation","id":"o1"}', False),
    ('{"resourceType":"Observation","resourceType":"Patient","id":"p1"}', True),
    ('{"resourceType":"Patient","id":"p1","id":"not a valid id!"}', False),
    ('{"resourceType":"Patient","id":"p2","meta":{"versionId":"1"},"meta":"junk"}', False),
]  # fmt: skip


def sql_verdicts(texts: list[str], resource_type: str = "Patient") -> dict[int, tuple[Any, ...]]:
    """Position -> (id, versionId, lastUpdated) of the lines the SQL accepts."""
    lines = block_batch(Block("f", 1, "\n".join(texts).encode()), resource_type).lines
    assert lines.num_rows == len(texts)
    with duckdb.connect() as connection:
        rows, rejected = checked_rows(connection, lines, resource_type)
    accepted = [n for n in range(len(texts)) if n not in rejected]
    values = zip(*(rows.column(c).to_pylist() for c in ("id", "version_id", "last_updated")))
    return dict(zip(accepted, values, strict=True))


def python_verdict(text: str) -> tuple[Any, ...] | None:
    try:
        return check(orjson.loads(text), "Patient")
    except ResourceError:
        return None


def test_sql_checks_agree_with_python_checks() -> None:
    texts = [text for text, _ in AGREED]
    sql = sql_verdicts(texts)
    for n, (text, ok) in enumerate(AGREED):
        assert (python_verdict(text) is not None) == ok, text
        assert sql.get(n) == python_verdict(text), text


def test_recheck_lands_what_python_accepts_and_names_the_rest() -> None:
    """The safety net behind the SQL: refused lines are judged again by check()."""
    texts = [
        '{"resourceType":"Patient","id":"p1"}',
        '{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"Patient/p2"}}]}',
        '{"resourceType":"Patient","id":"a b"}',
    ]
    table = pa.table({"source": ["f"] * 3, "line": [1, 2, 3], "text": texts})

    accepted, tombstones, bad = recheck(table, "Patient")

    assert accepted == [("p1", None, None, texts[0])]
    assert tombstones == [Tombstone("p2")]
    assert [(row[2], row[3]) for row in bad] == [
        (3, "id is missing or not a FHIR id ([A-Za-z0-9-.]{1,64})")
    ]


def test_block_batch_cuts_line_ends_and_sorts_out_what_is_not_json() -> None:
    data = (
        b'{"a":1}\r\n\r\n  \n{"b":\r2}\nNaN\n{"c":[1,]}\n{"d":4}\n[1]\n'
        b'{"e":"\xff"}\n{"f":{"g":NaN}}\n{"h":"\\q"}'
    )
    batch = block_batch(Block("f.ndjson", 10, data), "Patient")

    texts = ['{"a":1}', '{"b":\r2}', '{"d":4}', "[1]"]
    assert batch.lines.column("text").to_pylist() == texts
    assert batch.lines.column("line").to_pylist() == [10, 13, 16, 17]
    assert batch.lines.column("n").to_pylist() == [0, 1, 2, 3]
    assert [(row[2], row[3].split(":")[0]) for row in batch.quarantine] == [
        (14, "not JSON"),
        (15, "not JSON"),
        (18, "not JSON"),  # not UTF-8
        (19, "not JSON"),  # NaN in a member the checks do not read
        (20, "not JSON"),  # a bad escape there
    ]
    assert batch.entries == 9  # blank lines are no entries


def test_land_folder_lands_odd_files_like_clean_ones(
    duckdb_resource: DuckDBWarehouseResource, tmp_path: Path
) -> None:
    """CRLF, no final newline, blank lines, NaN, escapes and a deletion Bundle in one file."""
    folder = tmp_path / "export"
    folder.mkdir()
    deletion = {"resourceType": "Bundle", "type": "transaction",
                "entry": [{"request": {"method": "DELETE", "url": "Patient/p3"}}]}  # fmt: skip
    body = [
        orjson.dumps(patient("p1", "1", "2025-01-01T00:00:00Z")),
        b"",
        b'{"resourceType":"Patient","id":"p\\u0032","meta":{"versionId":"1"}}',
        b'{"resourceType":"Patient","id":"p9","x":NaN}',
        orjson.dumps(deletion),
        orjson.dumps(patient("p3", "1", "2025-01-01T00:00:00Z")),
    ]
    (folder / "Patient.ndjson.gz").write_bytes(gzip.compress(b"\r\n".join(body)))
    provenance = Provenance(SERVER, "s", at(2))

    with duckdb_resource.open_warehouse() as warehouse:
        [result] = land_folder(warehouse, plan_folder(folder), folder, provenance)
        rows = {row[0]: row[7] for row in current(warehouse)}
        bad = quarantine(warehouse)

    assert rows == {"p1": False, "p2": False, "p3": True}
    assert [(row[1], row[2], row[3].split(":")[0]) for row in bad] == [
        ("Patient.ndjson.gz", 4, "not JSON")
    ]
    assert (result.seen, result.landed, result.deleted, result.quarantined) == (5, 3, 1, 1)


SEQUENCE = [
    patient("p1", "1", "2025-01-01T00:00:00Z", n=1),
    patient("p2", "3", "2025-01-03T00:00:00Z", n=2),
    patient("p1", "2", "2025-01-02T00:00:00Z", n=3),
    patient("p2", "1", "2025-01-01T00:00:00Z", n=4),  # older, arrives late
    patient("p3", "1", "2025-01-01T00:00:00Z", n=5),
    patient("p3", "1", "2025-01-01T00:00:00Z", n=6),  # an equal version: the first stays
    patient("p4", None, "2025-01-05T00:00:00Z", n=7),
    patient("p4", None, "2025-01-04T00:00:00Z", n=8),
    patient("p6", None, "2025-01-03T00:00:00Z", n=9),  # no version, newer by time
    patient("p6", "2", "2025-01-01T00:00:00Z", n=10),
    patient("p7", "x", "2025-01-03T00:00:00Z", n=11),  # a version that is no integer
    patient("p7", "2", "2025-01-01T00:00:00Z", n=12),
]


@pytest.mark.parametrize("batch_rows", [1, 3, 100])
def test_append_mode_lands_what_merging_one_by_one_lands(
    duckdb_resource: DuckDBWarehouseResource, tmp_path: Path, batch_rows: int
) -> None:
    """A first landing (append, duplicates reduced at the end) equals a landing that MERGEs
    entry by entry into a table that already holds rows of the server."""
    entries = [*lines(*SEQUENCE), ("deleted", 1, Tombstone("p1")), ("deleted", 2, Tombstone("p5"))]
    options = LandingOptions(batch_rows=batch_rows)
    seeded = DuckDBWarehouseResource(database=str(tmp_path / "seeded.duckdb"))

    with duckdb_resource.open_warehouse() as warehouse:
        appended = land(warehouse, "Patient", entries, Provenance(SERVER, "s", at(9)), options)
        first = current(warehouse)
    with seeded.open_warehouse() as warehouse:
        seed = lines(patient("p0", "1", "2025-01-01T00:00:00Z"))
        land(warehouse, "Patient", seed, Provenance(SERVER, "s", at(9)))
        merged = land(warehouse, "Patient", entries, Provenance(SERVER, "s", at(9)),
                      LandingOptions(batch_rows=1))  # fmt: skip
        second = [row for row in current(warehouse) if row[0] != "p0"]

    assert first == second
    assert {row[0]: (row[3] or {}).get("n") for row in first} == {
        "p1": None, "p2": 2, "p3": 5, "p4": 7, "p5": None, "p6": 9, "p7": 11
    }  # fmt: skip
    assert (appended.seen, appended.deleted, appended.quarantined) == (14, 2, 0)
    assert appended.landed + appended.unchanged == merged.landed + merged.updated + merged.unchanged


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "entry": 5},
        {"resourceType": "Bundle", "entry": [{"request": "x"}]},
        {"resourceType": "Bundle",
         "entry": [{"request": {"method": "DELETE", "url": "Patient/p1"}, "response": "x"}]},
        {"resourceType": "Bundle", "type": "transaction"},
        {"resourceType": "Bundle", "entry": []},
    ],
)  # fmt: skip
def test_a_malformed_or_empty_bundle_is_quarantined_and_the_rest_lands(
    duckdb_resource: DuckDBWarehouseResource, bundle: dict[str, Any]
) -> None:
    entries = lines(patient("p1", "1", "2025-01-01T00:00:00Z"), bundle)  # type: ignore[arg-type]
    with duckdb_resource.open_warehouse() as warehouse:
        result = land(warehouse, "Patient", entries, Provenance(SERVER, "s", at(1)))
        assert [row[0] for row in current(warehouse)] == ["p1"]
        [bad] = quarantine(warehouse)
    assert (result.seen, result.landed, result.quarantined) == (2, 1, 1)
    assert bad[2] == 2 and "Bundle" in bad[3]


def test_full_validation_quarantines_what_the_model_cannot_build(
    duckdb_resource: DuckDBWarehouseResource,
) -> None:
    unknown = {**patient("p2", "1", "2025-01-01T00:00:00Z"),
               "contained": [{"resourceType": "Nope", "id": "x"}]}  # fmt: skip
    entries = lines(patient("p1", "1", "2025-01-01T00:00:00Z"), unknown)
    with duckdb_resource.open_warehouse() as warehouse:
        result = land(warehouse, "Patient", entries, Provenance(SERVER, "s", at(1)),
                      LandingOptions(validation="full"))  # fmt: skip
        [bad] = quarantine(warehouse)
    assert (result.landed, result.quarantined) == (1, 1)
    assert "does not define" in bad[3] and "Nope" not in bad[3]


@pytest.mark.parametrize(
    "resource", [{1: "a"}, {"resourceType": "Patient", "id": "p", "n": 2**70}, {"x": "\ud800"}]
)
def test_a_mapping_orjson_cannot_write_is_quarantined(
    duckdb_resource: DuckDBWarehouseResource, resource: dict[Any, Any]
) -> None:
    entries = [("page", 1, resource), ("page", 2, patient("p1", "1", "2025-01-01T00:00:00Z"))]
    with duckdb_resource.open_warehouse() as warehouse:
        result = land(warehouse, "Patient", entries, Provenance(SERVER, "s", at(1)))
        [bad] = quarantine(warehouse)
    assert (result.landed, result.quarantined) == (1, 1)
    assert bad[1:3] == ("page", 1)


def test_switch_interval_is_restored_after_overlapping_landings() -> None:
    before = sys.getswitchinterval()
    with SWITCH_INTERVAL:
        with SWITCH_INTERVAL:
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        # the other landing still runs
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == before


def deep(levels: int) -> dict[str, Any]:
    extension: dict[str, Any] = {"url": "http://x/u", "valueString": "v"}
    for _ in range(levels):
        extension = {"url": "http://x/u", "extension": [extension]}
    return {**patient("p2", "1", "2025-01-01T00:00:00Z"), "extension": [extension]}


@pytest.mark.parametrize(
    ("line", "validation", "error"),
    [
        (b'{"resourceType":"Patient","id":"p2","x":' + b"[" * 1100 + b"]" * 1100 + b"}",
         "fast", "nested too deeply"),
        (json.dumps(deep(130)).encode(), "full", "nested too deeply for the R4B model"),
        (b'{"resourceType":"Patient","id":"p2","bogus":1,"x":1e999}', "full", "bogus"),
        ('{"resourceType":"Patient","id":"p2","x":"\ud800"}', "fast", "lone surrogate"),
    ],
)  # fmt: skip
def test_lines_no_parser_or_model_can_take_are_quarantined(
    duckdb_resource: DuckDBWarehouseResource, line: bytes | str, validation: str, error: str
) -> None:
    entries = [*lines(patient("p1", "1", "2025-01-01T00:00:00Z")), ("f", 2, line)]
    with duckdb_resource.open_warehouse() as warehouse:
        result = land(warehouse, "Patient", entries, Provenance(SERVER, "s", at(1)),
                      LandingOptions(validation=validation))  # fmt: skip
        [bad] = quarantine(warehouse)
    assert (result.landed, result.quarantined) == (1, 1)
    assert error in bad[3]


def test_a_number_beyond_double_range_is_json_and_lands(
    duckdb_resource: DuckDBWarehouseResource,
) -> None:
    """RFC 8259 allows it; every path reads it alike (as infinity)."""
    line = b'{"resourceType":"Patient","id":"p1","x":1e999}\n'
    with duckdb_resource.open_warehouse() as warehouse:
        result = land(warehouse, "Patient", [Block("f", 1, line)], Provenance(SERVER, "s", at(1)))
    assert (result.landed, result.quarantined) == (1, 0)
    assert recheck(pa.table({"source": ["f"], "line": [1], "text": [line.decode()]}), "Patient")[0]
