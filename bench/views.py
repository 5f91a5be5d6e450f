"""Benchmark: the default Observation view over ~170k synthetic Observations.

Prints rows/s for (1) our engine's compiled DuckDB SQL, (2) hand-written DuckDB JSON SQL selecting
the same columns, over the same raw table (landed by ``land``, as in production: resource
compressed with zstd), and (3) pysof (Helios' Rust SQL on FHIR engine),
NDJSON file -> CSV. Targets: faster than pysof, within 2x of the hand-written SQL.

The Observations are clinosim's (the sandbox data set) replicated with new ids.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from fhir_assets.sandbox.seed import generate, read_ndjson
from fhir_assets.views import compile_view, load_view
from fhir_assets.warehouse.duckdb import DuckDBWarehouse
from fhir_assets.warehouse.inputs import ndjson_blocks
from fhir_assets.warehouse.landing import land
from fhir_assets.warehouse.protocol import Provenance

TARGET = 170_000
VIEW = Path(__file__).resolve().parent.parent / "fhir_assets/views/defaults/observation.json"

# The same columns as the default view, written by hand the way an analyst would.
HAND_WRITTEN = """
SELECT resource->>'$.id' AS id,
  regexp_extract(resource->>'$.subject.reference', 'Patient/([^/]+)$', 1) AS patient_id,
  regexp_extract(resource->>'$.encounter.reference', 'Encounter/([^/]+)$', 1) AS encounter_id,
  resource->>'$.status' AS status,
  resource->>'$.category[0].coding[0].code' AS category,
  resource->>'$.code.coding[0].system' AS code_system,
  resource->>'$.code.coding[0].code' AS code_code,
  resource->>'$.code.coding[0].display' AS code_display,
  resource->>'$.code.text' AS code_text,
  CAST(resource->'$.valueQuantity.value' AS DOUBLE) AS value_quantity,
  resource->>'$.valueQuantity.unit' AS value_unit,
  resource->>'$.valueCodeableConcept.coding[0].code' AS value_code,
  resource->>'$.valueString' AS value_string,
  resource->>'$.effectiveDateTime' AS effective_at,
  resource->>'$.issued' AS issued
FROM fhir_raw.observation WHERE NOT deleted
"""


def synthesize(folder: Path) -> tuple[Path, int]:
    """Write about TARGET Observations (clinosim's, copied with new ids) to one NDJSON file."""
    source = generate(folder / "clinosim", population=150, seed=7) / "Observation.ndjson"
    observations = list(read_ndjson(source))
    path = folder / "Observation.ndjson"
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for copy in range(TARGET // len(observations) + 1):
            for observation in observations:
                out.write(json.dumps({**observation, "id": f"{observation['id']}-{copy}"}) + "\n")
                written += 1
    return path, written


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, float]:
    started = time.perf_counter()
    con.execute(f"CREATE OR REPLACE TEMP TABLE result AS {sql}")
    seconds = time.perf_counter() - started
    row = con.execute("SELECT count(*) FROM result").fetchone()
    return (int(row[0]) if row else 0), seconds


def run_pysof(path: Path, folder: Path) -> tuple[int, float] | str:
    """pysof's rows and seconds, or why it cannot run here."""
    try:
        import pysof  # type: ignore[import-untyped]
    except ImportError:
        return "not installed (pip install pysof)"
    view = json.loads(VIEW.read_text())
    started = time.perf_counter()
    try:
        stats = pysof.process_ndjson_to_file(view, str(path), str(folder / "pysof.csv"), "csv")
    except NotImplementedError as exc:
        # pysof 0.2.6 wheels link against glibc >= 2.38; older systems load only the stub
        return f"installed but its Rust extension does not load ({exc})"
    seconds = time.perf_counter() - started
    rows = stats.get("output_rows") or stats.get("rows_written") or sum(1 for _ in path.open())
    return int(rows), seconds


def report(label: str, rows: int, seconds: float) -> float:
    rate = rows / seconds if seconds else float("inf")
    print(f"{label:<42} {rows:>9,} rows {seconds:8.2f} s {rate:>12,.0f} rows/s")
    return rate


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, count = synthesize(folder)
        print(f"{count:,} Observations in {path.stat().st_size / 1e6:.0f} MB of NDJSON")
        con = duckdb.connect(str(folder / "bench.duckdb"))
        started = time.perf_counter()
        provenance = Provenance.now("https://bench.example/fhir", "bench")
        land(DuckDBWarehouse(con), "Observation", ndjson_blocks(path), provenance)
        report("land the NDJSON (fhir_raw.observation)", count, time.perf_counter() - started)
        compiled = compile_view(load_view(VIEW), "duckdb")
        ours = report("fhir-assets view (compiled DuckDB SQL)", *timed(con, compiled.sql))
        hand = report("hand-written DuckDB JSON SQL", *timed(con, HAND_WRITTEN))
        pysof = run_pysof(path, folder)
        if isinstance(pysof, str):
            print(f"pysof: unavailable: {pysof}")
        else:
            pysof_rate = report("pysof NDJSON -> CSV", *pysof)
            print(f"engine rows/s / pysof rows/s: {ours / pysof_rate:.1f} (target > 1)")
        print(f"engine time / hand-written SQL time: {hand / ours:.2f} (target < 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
