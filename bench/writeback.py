"""Write-back throughput against a fresh sandbox: creates, unchanged re-runs, updates.

Prints resources per second for each pass of N Observations in transactions of BATCH, and the
local R4B validation rate. Run: .venv/bin/python bench/writeback.py [N] [BATCH]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb

from fhir_assets.sandbox import Sandbox
from fhir_assets.writeback import DuckDBAuditWriter, WritePolicy, Writer, summarize
from fhir_assets.writeback.validate import validate_resource

SYSTEM = "urn:fhir-assets:bench"


def observation(i: int, value: int, patient: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": f"bench-{i}"}],
        "status": "final",
        "code": {"text": "bench score"},
        "subject": {"reference": f"Patient/{patient}"},
        "valueInteger": value,
    }


def main(n: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, Sandbox(home=Path(".fhir-assets")) as server:
        with server.fhir_client() as client, duckdb.connect(f"{tmp}/audit.duckdb") as con:
            patients = [p["id"] for p in client.search("Patient", {"_count": 100})]
            started = time.perf_counter()
            for i in range(n):
                validate_resource(observation(i, 0, patients[i % len(patients)]))
            seconds = time.perf_counter() - started
            print(f"R4B validation: {n / seconds:,.0f} Observations/s")
            for name, value in (("create", 1), ("unchanged", 1), ("update", 2)):
                writer = Writer(client, WritePolicy(SYSTEM), DuckDBAuditWriter(con), run_id=name)
                resources = [observation(i, value, patients[i % len(patients)]) for i in range(n)]
                started = time.perf_counter()
                outcomes = []
                for start in range(0, n, batch):
                    outcomes += writer.write(resources[start : start + batch])
                seconds = time.perf_counter() - started
                print(f"{name:9} pass: {n / seconds:7,.0f} resources/s  {summarize(outcomes)}")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 100,
    )
