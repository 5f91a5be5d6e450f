"""Arrow arrays built without ``pa.array`` equal what ``pa.array`` builds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fhir_assets.warehouse.arrays import (
    bool_array,
    int_array,
    string_array,
    table_of_rows,
    utf8_array,
)
from fhir_assets.warehouse.batches import QUARANTINE_SCHEMA


@pytest.mark.parametrize(
    "values",
    [
        [],
        [None],
        [""],
        ["", ""],
        ["obs-1", "obs-2", "obs-3"],
        ["a\nb", "c"],  # a value holding the newline the fast path joins with
        ["x", None, "é\n", ""],
        ["日本", None, "\r\n", "a"],
        [f"obs-{n}" if n % 7 else None for n in range(1000)],
    ],
)
def test_string_array_equals_pa_array(values: list[str | None]) -> None:
    built = string_array(values)
    built.validate(full=True)
    assert built.equals(pa.array(values, pa.string()))


@pytest.mark.parametrize("values", [[1], [b"x"], [None, 2], ["a", True], [{"a": 1}]])
def test_string_array_refuses_what_is_no_string(values: list[object]) -> None:
    with pytest.raises(TypeError):
        string_array(values)  # type: ignore[arg-type]


def test_utf8_array_takes_utf8_and_refuses_the_rest() -> None:
    texts = [b"a", b"", "é".encode(), b'{"id":"1"}']
    assert utf8_array(texts).equals(pa.array([t.decode() for t in texts], pa.string()))
    assert utf8_array([]).equals(pa.array([], pa.string()))
    with pytest.raises(pa.ArrowInvalid):
        utf8_array([b"ok", b"\xff"])


def test_bool_and_int_arrays_equal_pa_array() -> None:
    flags = [True, False, False, True, True, False, True, False, True, True, False]
    assert bool_array(flags).equals(pa.array(flags))
    assert int_array([3, -1, 2**40]).equals(pa.array([3, -1, 2**40], pa.int64()))
    positions = int_array(np.arange(5, dtype=np.int32), np.int32)
    assert positions.equals(pa.array(range(5), pa.int32()))


def test_table_of_rows_equals_pa_table() -> None:
    rows = [("Patient", "f.ndjson", 3, "not JSON", "x"), ("Patient", "f.ndjson", 9, "e", "")]
    expected = pa.table(list(zip(*rows, strict=True)), schema=QUARANTINE_SCHEMA)
    assert table_of_rows(rows, QUARANTINE_SCHEMA).equals(expected)
    assert table_of_rows([], QUARANTINE_SCHEMA).num_rows == 0
