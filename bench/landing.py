"""Landing speed and memory: our landing (fast and full validation) vs orjson and pandas.

``land-fast`` lands into a new DuckDB file (append path); ``land-again`` lands the same file a
second time into that table and times only the second landing (MERGE path, nothing changes);
``land-changed`` lands the file with every resource at versionId 1, then times landing it again
with every resource at versionId 2 (MERGE path, every row updated: an incremental re-sync in
which everything changed), under the default memory limit.
Generates ~200 MB of synthetic Observation NDJSON once (cached in the temp dir; override with
FHIR_BENCH_MB / FHIR_BENCH_DIR; FHIR_BENCH_ONLY=land-changed,... runs those methods and orjson
only), then measures each method in its own subprocess so that peak
RSS is per method (``os.wait4`` rusage of that child); ``CPU s`` is the child's CPU time (all
threads) over the timed part, steadier than the rate on a loaded machine. A landing's time
includes a ``CHECKPOINT`` after it (the one it leaves for later). Full validation runs on the first
FHIR_BENCH_FULL_MB (default 20) MB only: at a few thousand resources/s per core the whole file
would take minutes; its rate is per resource, so the figure compares.

    python bench/landing.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

MB = int(os.environ.get("FHIR_BENCH_MB", "200"))
FULL_MB = int(os.environ.get("FHIR_BENCH_FULL_MB", "20"))
ONLY = [m for m in os.environ.get("FHIR_BENCH_ONLY", "").split(",") if m]
CACHE = Path(os.environ.get("FHIR_BENCH_DIR", Path(tempfile.gettempdir()) / "fhir-assets-bench"))
CODES = [("8867-4", "Heart rate", "/min"), ("8310-5", "Body temperature", "Cel"),
         ("29463-7", "Body weight", "kg"), ("8302-2", "Body height", "cm")]  # fmt: skip


def observation(rnd: random.Random, n: int, version: str | None = None) -> dict[str, object]:
    code, display, unit = rnd.choice(CODES)
    day = f"2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
    version = version or str(rnd.randint(1, 3))
    return {
        "resourceType": "Observation",
        "id": f"obs-{n}",
        "meta": {"versionId": version, "lastUpdated": f"{day}T10:{n % 60:02d}:00Z"},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": f"Patient/pat-{rnd.randint(1, 5000)}"},
        "encounter": {"reference": f"Encounter/enc-{rnd.randint(1, 50000)}"},
        "effectiveDateTime": f"{day}T09:00:00+00:00",
        "valueQuantity": {
            "value": round(rnd.uniform(1, 200), 1),
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def generate(path: Path, megabytes: int, version: str | None = None) -> Path:
    """Write (once) about ``megabytes`` MB of Observation NDJSON (every resource at
    ``version`` if given)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rnd, n, size = random.Random(7), 0, 0  # noqa: S311 (synthetic data)
    with open(path.with_suffix(".tmp"), "wb") as out:
        while size < megabytes * 1_000_000:
            line = orjson.dumps(observation(rnd, n, version)) + b"\n"
            out.write(line)
            size, n = size + len(line), n + 1
    path.with_suffix(".tmp").rename(path)
    return path


def run_method(method: str, path: Path) -> tuple[int, float, float]:
    """In the child: run one method over the file; how many resources it handled, in how many
    seconds, and the process's CPU seconds (user + system, all threads) over that time."""
    begin, cpu = time.perf_counter(), time.process_time()
    if method == "orjson":
        with open(path, "rb") as lines:
            count = sum(1 for line in lines if orjson.loads(line))
            return count, time.perf_counter() - begin, time.process_time() - cpu
    if method == "pandas":
        import pandas as pd  # imported before the clock starts (see __main__)

        with open(path, "rb") as lines:
            frame = pd.DataFrame([orjson.loads(line) for line in lines])
            return len(frame), time.perf_counter() - begin, time.process_time() - cpu
    import duckdb

    from fhir_assets.warehouse.duckdb import DEFAULT_MEMORY_LIMIT, DuckDBWarehouse
    from fhir_assets.warehouse.inputs import ndjson_blocks
    from fhir_assets.warehouse.landing import LandingOptions, land
    from fhir_assets.warehouse.protocol import Provenance

    database = path.parent / f"bench-{method}-{os.getpid()}.duckdb"
    try:
        with duckdb.connect(str(database)) as con:
            options = LandingOptions(validation="full" if method == "land-full" else "fast")
            provenance = Provenance.now("https://bench.example/fhir", "bench")
            warehouse = DuckDBWarehouse(con, memory_limit=DEFAULT_MEMORY_LIMIT)
            if method in ("land-again", "land-changed"):  # the MERGE path, into its own table
                first = path.with_name(path.name.replace("-v2.", "-v1."))
                land(warehouse, "Observation", ndjson_blocks(first), provenance, options)
                begin, cpu = time.perf_counter(), time.process_time()
            result = land(warehouse, "Observation", ndjson_blocks(path), provenance, options)
            # timed too: the checkpoint a landing leaves for later (duckdb.py's
            # LANDING_CHECKPOINT_THRESHOLD), which closing the file would otherwise run
            con.execute("CHECKPOINT")
            return result.seen, time.perf_counter() - begin, time.process_time() - cpu
    finally:
        database.unlink(missing_ok=True)


def measure(method: str, path: Path) -> dict[str, float]:
    """Run one method in a child process; its rate and its own peak RSS."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", method, str(path)], stdout=subprocess.PIPE
    )
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{method} failed with status {status}")
    count, inner, cpu = json.loads(out)
    megabytes = path.stat().st_size / 1_000_000
    return {
        "resources": count,
        "per_s": count / inner,
        "mb_per_s": megabytes / inner,
        "rss_mb": usage.ru_maxrss / 1024,
        "wall_s": seconds,
        "cpu_s": cpu,
    }


def head(path: Path, megabytes: int) -> Path:
    """The first ``megabytes`` MB (whole lines) of ``path``, cached beside it."""
    part = path.with_name(f"{path.stem}-{megabytes}mb.ndjson")
    if not part.exists():
        with open(path, "rb") as lines, open(part, "wb") as out:
            for line in lines:
                out.write(line)
                if out.tell() >= megabytes * 1_000_000:
                    break
    return part


def main() -> None:
    path = generate(CACHE / f"observations-{MB}mb.ndjson", MB)
    print(f"input: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    generate(CACHE / f"observations-{MB}mb-v1.ndjson", MB, version="1")
    changed = generate(CACHE / f"observations-{MB}mb-v2.ndjson", MB, version="2")
    plan = [("orjson", path), ("land-fast", path), ("land-again", path),
            ("land-changed", changed), ("land-full", head(path, FULL_MB)),
            ("pandas", path)]  # fmt: skip
    if ONLY:  # FHIR_BENCH_ONLY=land-changed,land-fast: orjson always runs (the reference)
        plan = [(m, f) for m, f in plan if m == "orjson" or m in ONLY]
    results = {method: measure(method, file) for method, file in plan}
    print(f"{'method':12} {'resources':>10} {'res/s':>10} {'MB/s':>8} {'peak RSS MB':>12} "
          f"{'CPU s':>6}")  # fmt: skip
    for method, r in results.items():
        print(f"{method:12} {r['resources']:10.0f} {r['per_s']:10.0f} {r['mb_per_s']:8.1f} "
              f"{r['rss_mb']:12.0f} {r['cpu_s']:6.2f}")  # fmt: skip
    if ONLY:
        for method in ONLY:
            rate = results[method]["per_s"] / results["orjson"]["per_s"]
            print(f"{method} / orjson parse rate: {rate:.0%}; load average {load()}")
        return
    orjson_rate = results["orjson"]["per_s"]
    ratio = results["land-fast"]["per_s"] / orjson_rate
    again = results["land-again"]["per_s"] / orjson_rate
    changed = results["land-changed"]["per_s"] / orjson_rate
    full = results["land-full"]["per_s"] / results["land-fast"]["per_s"]
    print(
        f"land-fast / orjson parse rate: {ratio:.0%} (target >= 40%); land-again (re-landing, "
        f"MERGE) / orjson: {again:.0%}; land-changed (re-land with every resource changed, "
        f"MERGE) / orjson: {changed:.0%} (target >= 30%); land-full / land-fast: {full:.1%}; "
        f"peak RSS target < 500 MB; load average {load()}"
    )


def load() -> str:
    """The 1, 5 and 15 minute load averages (a shared machine slows both sides of a ratio)."""
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        # imports are not part of any method's time; each child imports only what it uses
        if sys.argv[2] == "pandas":
            import pandas  # noqa: F401
        elif sys.argv[2].startswith("land-"):
            import duckdb  # noqa: F401
            import pyarrow

            import fhir_assets.warehouse.landing  # noqa: F401

            pyarrow.array(["warm"])  # pyarrow's first array takes ~1 s of one-time setup
        print(json.dumps(run_method(sys.argv[2], Path(sys.argv[3]))))
    else:
        main()
