"""Benchmark: views over ~160k synthetic Observations, and k sibling forEachOrNull over Conditions.

One run prints rows/s, peak RSS and SQL bytes for:
(1) our engine's compiled DuckDB SQL over the landed raw table (resource compressed, as landed),
(2) hand-written DuckDB JSON SQL selecting the same columns, over the same table,
(3) ``fhir-assets views run`` (NDJSON file -> Parquet, the CLI path),
(4) pysof (Helios' Rust SQL on FHIR engine), NDJSON file -> CSV, when installed,
(5) k = 1..6 sibling forEachOrNull selects over ~19k Conditions (compiled SQL over a table),
(6) ``incremental``: the default Observation view over ~300k landed Observations built in full,
    then 1% of them changed (re-landed with a new version) and the view built incrementally
    (``views.incremental``) and in full again; prints both times and the ratio (target <= 10%).

Each measurement (ours, hand-written and pysof alike) runs in its own child process, timed
around the work alone, and reports that process's peak RSS (``VmHWM``: Linux's ``ru_maxrss`` of
a child starts at its parent's). The data are clinosim's (the sandbox data set) replicated with
new ids. Run ``python bench/views.py [NAME ...]``; ``BENCH_OBSERVATIONS`` / ``BENCH_CONDITIONS``
set smaller inputs on a loaded machine (``BENCH_INCREMENTAL`` for (6)); set ``PYTHONPATH`` to
another checkout to measure that code with the same script. pysof needs ``pip install pysof``
(its OpenSSL is swapped for the system's, see ``pysof_env``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

TARGET = 160_000
INCREMENTAL = 300_000
CHANGED_SHARE = 0.01
SERVER = "https://bench.example/fhir"
CONDITIONS = 19_000
ROOT = Path(__file__).resolve().parent.parent
VIEW = ROOT / "fhir_assets/views/defaults/observation.json"
SIBLINGS = ("identifier", "category", "evidence", "stage", "bodySite", "note")

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
  CAST(resource->>'$.effectiveDateTime' AS TIMESTAMPTZ) AS effective_at,
  resource->>'$.effectiveDateTime' AS effective_at_text,
  CAST(resource->>'$.issued' AS TIMESTAMPTZ) AS issued
FROM fhir_raw.observation WHERE NOT deleted
"""


def sibling_view(k: int) -> dict[str, Any]:
    """A Condition view with ``k`` sibling forEachOrNull selects (two columns each)."""
    base = [{"name": "id", "path": "id"}, {"name": "code", "path": "code.coding.first().code"}]
    selects: list[dict[str, Any]] = [{"column": base}]
    for element in SIBLINGS[:k]:
        text = {"name": f"{element}_text", "path": "$this.text", "type": "string"}
        index = {"name": f"{element}_index", "path": "%rowIndex", "type": "integer"}
        selects.append({"forEachOrNull": element, "column": [text, index]})
    return {"resourceType": "ViewDefinition", "resource": "Condition", "select": selects}


def replicate(source: Path, path: Path, target: int) -> int:
    """Write about ``target`` copies of the resources in ``source`` (new ids) to ``path``."""
    items = [json.loads(line) for line in source.open() if line.strip()]
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for copy in range(target // len(items) + 1):
            for item in items:
                out.write(json.dumps({**item, "id": f"{item['id']}-{copy}"}) + "\n")
                written += 1
    return written


def prepare(folder: Path) -> None:
    """The NDJSON inputs and a warehouse file with both raw tables landed."""
    from fhir_assets.sandbox.seed import generate
    from fhir_assets.warehouse.duckdb import DuckDBWarehouse
    from fhir_assets.warehouse.inputs import ndjson_blocks
    from fhir_assets.warehouse.landing import land
    from fhir_assets.warehouse.protocol import Provenance

    source = generate(folder / "clinosim", population=150, seed=7)
    counts = {}
    targets = (
        ("Observation", int(os.environ.get("BENCH_OBSERVATIONS", TARGET))),
        ("Condition", int(os.environ.get("BENCH_CONDITIONS", CONDITIONS))),
    )
    for kind, target in targets:
        counts[kind] = replicate(source / f"{kind}.ndjson", folder / f"{kind}.ndjson", target)
    con = duckdb.connect(str(folder / "bench.duckdb"))
    provenance = Provenance.now("https://bench.example/fhir", "bench")
    for kind in counts:
        land(DuckDBWarehouse(con), kind, ndjson_blocks(folder / f"{kind}.ndjson"), provenance)
    con.close()
    size = (folder / "Observation.ndjson").stat().st_size / 1e6
    sys.stderr.write(
        f"{counts['Observation']:,} Observations ({size:.0f} MB NDJSON), "
        f"{counts['Condition']:,} Conditions\n"
    )


def materialize(folder: Path, sql: str) -> dict[str, Any]:
    con = duckdb.connect(str(folder / "bench.duckdb"), read_only=True)
    started = time.perf_counter()
    con.execute(f"CREATE TEMP TABLE result AS {sql}")
    seconds = time.perf_counter() - started
    row = con.execute("SELECT count(*) FROM result").fetchone()
    return {"rows": int(row[0]) if row else 0, "seconds": seconds, "sql_bytes": len(sql)}


def task(name: str, folder: Path) -> dict[str, Any]:
    """One measurement, run in a child process (its peak RSS is the measurement's)."""
    from fhir_assets.views import compile_view, load_view, parse_view

    if name == "engine":
        return materialize(folder, compile_view(load_view(VIEW), "duckdb").sql)
    if name == "hand":
        return materialize(folder, HAND_WRITTEN)
    if name.startswith("k"):
        view = parse_view(sibling_view(int(name[1:])))
        return materialize(folder, compile_view(view, "duckdb").sql)
    if name == "run":
        return run_cli(folder)
    if name == "pysof":
        return run_pysof(folder)
    if name == "prepare":
        prepare(folder)
        return {}
    if name == "incremental":
        return incremental(folder)
    raise SystemExit(f"unknown task {name}")


def changed_lines(path: Path, share: float) -> list[tuple[str, int, bytes]]:
    """Every ``1/share``-th resource of ``path`` as a new version (status ``amended``)."""
    step, entries = round(1 / share), []
    with path.open() as source:
        for n, line in enumerate(source):
            if n % step == 0:
                item = json.loads(line)
                meta = {"versionId": "999", "lastUpdated": "2030-01-01T00:00:00Z"}
                item.update(status="amended", meta=meta)
                entries.append(("changed.ndjson", n + 1, json.dumps(item).encode()))
    return entries


def incremental(folder: Path) -> dict[str, Any]:
    """Full build, 1% changed and landed, incremental build, full build of the same data."""
    from fhir_assets.sandbox.seed import generate
    from fhir_assets.views import load_view
    from fhir_assets.views.incremental import build_view
    from fhir_assets.warehouse.duckdb import DuckDBWarehouse
    from fhir_assets.warehouse.inputs import ndjson_blocks
    from fhir_assets.warehouse.landing import land
    from fhir_assets.warehouse.protocol import Provenance

    source = generate(folder / "clinosim", population=150, seed=7)
    path = folder / "Observation-incremental.ndjson"
    count = replicate(
        source / "Observation.ndjson", path, int(os.environ.get("BENCH_INCREMENTAL", INCREMENTAL))
    )
    warehouse = DuckDBWarehouse(duckdb.connect(str(folder / "incremental.duckdb")))
    land(warehouse, "Observation", ndjson_blocks(path), Provenance.now(SERVER, "bench"))
    view = load_view(VIEW)
    first = build_view(warehouse, view)
    changes = changed_lines(path, CHANGED_SHARE)
    land(warehouse, "Observation", changes, Provenance.now(SERVER, "bench-2"))
    started = time.perf_counter()
    update = build_view(warehouse, view, first.state)
    incremental_s = time.perf_counter() - started
    started = time.perf_counter()
    full = build_view(warehouse, view)
    full_s = time.perf_counter() - started
    return {
        "resources": count,
        "changed": update.changed,
        "rows": full.rows,
        "same_rows": update.rows == full.rows,
        "mode": update.mode,
        "full_s": full_s,
        "incremental_s": incremental_s,
    }


def run_cli(folder: Path) -> dict[str, Any]:
    from typer.testing import CliRunner

    from fhir_assets.cli import app

    out = folder / "run.parquet"
    args = ["views", "run", str(VIEW), "--input", str(folder / "Observation.ndjson")]
    started = time.perf_counter()
    result = CliRunner().invoke(app, [*args, "--output", str(out)])
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        return {"error": result.output[-300:]}
    row = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchone()
    return {"rows": int(row[0]) if row else 0, "seconds": seconds}


def run_pysof(folder: Path) -> dict[str, Any]:
    try:
        import pysof  # type: ignore[import-not-found]
    except ImportError:
        return {"error": "not installed (pip install pysof into the venv to compare)"}
    view = json.loads(VIEW.read_text())
    started = time.perf_counter()
    try:
        pysof.process_ndjson_to_file(
            view, str(folder / "Observation.ndjson"), str(folder / "pysof.csv"), "csv"
        )
    except NotImplementedError as exc:
        return {"error": f"its Rust extension does not load ({exc})"}
    seconds = time.perf_counter() - started
    with (folder / "pysof.csv").open() as rows:
        count = sum(1 for _ in rows) - 1  # header
    return {"rows": count, "seconds": seconds}


def pysof_env(folder: Path) -> dict[str, str]:
    """pysof's wheel bundles an OpenSSL built for glibc 2.38: load the system's under its names
    (PITFALLS.md, "pysof")."""
    env = dict(os.environ)
    try:
        import importlib.util

        spec = importlib.util.find_spec("pysof")
    except ImportError:
        return env
    if spec is None or spec.origin is None:
        return env
    libs = Path(spec.origin).parent.parent / "pysof.libs"
    shim = folder / "pysof-ssl"
    shim.mkdir(exist_ok=True)
    names = []
    for bundled in sorted(libs.glob("lib*.so*")):
        system = Path("/usr/lib/x86_64-linux-gnu") / (bundled.name.split("-")[0] + ".so.3")
        if bundled.name.startswith(("libcrypto", "libssl")) and system.exists():
            link = shim / bundled.name
            if not link.exists():
                link.symlink_to(system)
            names.append(bundled.name)
    if names:
        env["LD_LIBRARY_PATH"] = str(shim)
        env["LD_PRELOAD"] = " ".join(sorted(names))  # libcrypto before libssl
    return env


def measure(name: str, folder: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``task(name)`` in a child process; add its peak RSS (MB)."""
    argv = [sys.executable, __file__, "task", name, str(folder)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    output = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    lines = output.decode().strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": f"exit {status}"}
    result.setdefault("rss_mb", usage.ru_maxrss / 1024)
    return result


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(label: str, result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"{label:<40} unavailable: {result['error']}")
        return
    if "incremental_s" in result:
        ratio = result["incremental_s"] / result["full_s"]
        print(
            f"{label:<40} {result['resources']:,} resources, {result['changed']:,} changed: "
            f"full {result['full_s']:.2f} s, {result['mode']} {result['incremental_s']:.2f} s, "
            f"ratio {ratio:.3f} (target <= 0.10), same rows: {result['same_rows']}, "
            f"{result['rss_mb']:.0f} MB RSS"
        )
        return
    rate = result["rows"] / result["seconds"] if result["seconds"] else float("inf")
    sql = f" {result['sql_bytes'] / 1000:8.1f} KB SQL" if "sql_bytes" in result else ""
    print(
        f"{label:<40} {result['rows']:>9,} rows {result['seconds']:7.2f} s "
        f"{rate:>10,.0f} rows/s {result['rss_mb']:7.0f} MB RSS{sql}"
    )


LABELS = {
    "engine": "fhir-assets view (compiled DuckDB SQL)",
    "hand": "hand-written DuckDB JSON SQL",
    "run": "fhir-assets views run (NDJSON->Parquet)",
    "pysof": "pysof (NDJSON->CSV)",
    **{f"k{k}": f"k={k} sibling forEachOrNull (Conditions)" for k in range(1, 7)},
    "incremental": "incremental build, 1% changed",
}


def main(names: list[str]) -> int:
    """Run the named measurements (default: all), in the order of ``LABELS``."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not names or set(names) - {"incremental"}:
            measure("prepare", folder)
        for name in LABELS:
            if not names or name in names:
                env = pysof_env(folder) if name == "pysof" else None
                results[name] = measure(name, folder, env)
                report(LABELS[name], results[name])
    k1, k6 = results.get("k1", {}), results.get("k6", {})
    if k1.get("seconds") and k6.get("seconds"):
        print(f"k=6 / k=1 run time: {k6['seconds'] / k1['seconds']:.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "task":
        result = task(sys.argv[2], Path(sys.argv[3]))
        sys.stdout.write(json.dumps({**result, "rss_mb": peak_rss_mb()}) + "\n")
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
