"""Benchmark: ``fhir_deid.observation`` built inside DuckDB from a synthetic ``fhir.observation``.

Prints rows/s of the de-identified build (keyed hashes of three ids per row, the per-patient
date shift of two timestamps) against a plain copy of the same table (``CREATE TABLE AS SELECT
*``). Run ``python bench/deid.py [ROWS]`` (default
1,000,000 rows over 10,000 patients; smaller on a loaded machine).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fhir_assets.deid.build import DeidContext, deid_select
from fhir_assets.deid.keyed import DeidKey
from fhir_assets.deid.policy import build_policies
from fhir_assets.views.library import load_views
from fhir_assets.warehouse.sql import DUCKDB

SYNTHETIC = """
CREATE TABLE fhir.observation AS SELECT
  'obs-' || i AS "id", 'pat-' || (i % {patients}) AS "patient_id", 'enc-' || (i % 50000) AS
  "encounter_id", 'final' AS "status", 'vital-signs' AS "category", 'http://loinc.org' AS
  "code_system", '8867-4' AS "code_code", 'Heart rate' AS "code_display", 'HR' AS "code_text",
  60.0 + i % 40 AS "value_quantity", '/min' AS "value_unit", NULL AS "value_code",
  NULL AS "value_string", TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_minutes(i) AS
  "effective_at", '2020-01-01' AS "effective_at_text", TIMESTAMPTZ '2020-01-02 00:00:00+00' +
  to_minutes(i) AS "issued"
FROM range({rows}) AS r(i)
"""


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    started = time.perf_counter()
    con.execute(sql)
    return time.perf_counter() - started


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    [policy] = build_policies(load_views(None, {"Observation"}))
    ctx = DeidContext(DeidKey.from_secret("bench-" + "k" * 40), DUCKDB, date.today())
    with tempfile.TemporaryDirectory() as folder:
        con = duckdb.connect(str(Path(folder) / "bench.duckdb"))
        con.execute("CREATE SCHEMA fhir; CREATE SCHEMA fhir_deid")
        con.execute(SYNTHETIC.format(rows=rows, patients=max(rows // 100, 1)))
        copy = timed(con, "CREATE TABLE fhir_deid.copy AS SELECT * FROM fhir.observation")
        deid = timed(con, f"CREATE TABLE fhir_deid.observation AS {deid_select(policy, ctx)}")
        con.close()
    print(f"rows: {rows:,}  load average: {os.getloadavg()[0]:.1f}")
    print(f"plain copy: {copy:.2f} s ({rows / copy:,.0f} rows/s)")
    print(f"deid build: {deid:.2f} s ({rows / deid:,.0f} rows/s), {deid / copy:.1f}x the copy")


if __name__ == "__main__":
    main()
