"""Bulk export and landing benchmark: 1x, 10x and 100x the CI data set, peak RSS per step.

The sandbox's own export (about 4.4k resources) is replicated with new ids into NDJSON files of
the same types, served by a scripted Bulk Data server on 127.0.0.1 (loading 400k resources into
sekmet would take about 15 minutes). Each size runs two steps, each in a child process that
reports its own peak RSS (RSS must stay flat as the export grows):
    * ``export``: ``run_export`` (kick-off, poll, parallel streamed download, line counts
      against the manifest, a parse of every line);
    * ``land``: the downloaded folder through ``land_folder`` (the one ``land()`` path, fast
      validation) into a fresh DuckDB file with the Dagster resource's memory limit.

    .venv/bin/python bench/bulk.py [--sizes 1,10,100]

The landing step's resources are every entry landed (landed, updated, unchanged or
quarantined).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fhir_assets.fhir import BearerAuth, FhirClient, Token, TokenSource  # noqa: E402
from fhir_assets.fhir.bulk import BulkClient, ExportRequest, run_export  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 (a local test server's token)
HEADER = ("size", "step", "resources", "MB", "s", "res/s", "MB/s", "peak RSS MB")
WIDTHS = (5, 6, 10, 8, 7, 9, 7, 12)


class StaticTokens(TokenSource):
    def _fetch(self) -> Token:
        return Token(TOKEN, time.time() + 3600, "system/*.read")


def base_export(folder: Path) -> list[tuple[str, Path]]:
    """Export the CI sandbox once (the data set every size multiplies)."""
    from fhir_assets.sandbox import Sandbox

    with Sandbox(home=REPO / ".fhir-assets") as sandbox, sandbox.fhir_client() as client:
        with BulkClient(client) as bulk:
            return run_export(bulk, ExportRequest(), folder).output_files()


def replicate(
    files: list[tuple[str, Path]], times: int, folder: Path
) -> list[tuple[str, Path, int]]:
    """Write each type's file ``times`` over, ids suffixed per copy; returns (type, path, lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for resource_type, source in files:
        lines = [orjson.loads(line) for line in source.read_bytes().splitlines() if line.strip()]
        target = folder / f"{resource_type}.ndjson"
        with target.open("wb") as out:
            for copy in range(times):
                for resource in lines:
                    out.write(orjson.dumps(resource | {"id": f"{resource['id']}-{copy}"}) + b"\n")
        written.append((resource_type, target, len(lines) * times))
    return written


def child(url: str, out: str) -> None:
    """Run one export against ``url`` into ``out``; print resources, bytes, seconds, peak RSS."""
    client = FhirClient(url, auth=BearerAuth(StaticTokens(), url))
    started = time.perf_counter()
    with BulkClient(client) as bulk:
        result = run_export(bulk, ExportRequest(), Path(out))
    seconds = time.perf_counter() - started
    size = sum(f.bytes for f in result.files)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(orjson.dumps([sum(result.counts().values()), size, seconds, peak_kib]).decode())


def land_child(folder: str) -> None:
    """Land the NDJSON files below ``folder`` into a new DuckDB file beside it; print
    resources, bytes, seconds, peak RSS."""
    import duckdb

    from fhir_assets.warehouse.duckdb import DuckDBWarehouse
    from fhir_assets.warehouse.files import land_folder, plan_folder
    from fhir_assets.warehouse.protocol import Provenance

    root = Path(folder)
    plan = plan_folder(root)
    size = sum(path.stat().st_size for paths in plan.files.values() for path in paths)
    provenance = Provenance.now("https://bench.example/fhir", "bench")
    started = time.perf_counter()
    with duckdb.connect(str(root.parent / "landing.duckdb")) as connection:
        warehouse = DuckDBWarehouse(connection, "128MB")  # the Dagster resource's default
        landed = sum(r.seen for r in land_folder(warehouse, plan, root, provenance))
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(orjson.dumps([landed, size, seconds, peak_kib]).decode())


def run_child(*args: str) -> tuple[int, int, float, int]:
    """Run this script with ``args`` in a child; its printed figures."""
    run = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    resources, size, seconds, peak_kib = orjson.loads(run.stdout.strip().splitlines()[-1])
    return resources, size, seconds, peak_kib


def measure(files: list[tuple[str, Path, int]], work: Path) -> tuple[int, int, float, int]:
    from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply

    with BulkServer() as server:
        server.token = TOKEN
        for resource_type, path, _ in files:
            server.files[path.name] = path
        outputs = [(t, p.name, n) for t, p, n in files]
        server.status = [Reply(200, server.manifest(outputs))]
        return run_child("--child", server.url, str(work / "out"))


def row(times: int, step: str, figures: tuple[int, int, float, int]) -> str:
    resources, size, seconds, peak_kib = figures
    mb = size / 1e6
    return (
        f"{times:>4}x {step:>6} {resources:>10} {mb:>8.1f} {seconds:>7.1f} "
        f"{resources / seconds:>9.0f} {mb / seconds:>7.1f} {peak_kib / 1024:>12.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--child", nargs=2, metavar=("URL", "OUT"))
    parser.add_argument("--land-child", metavar="FOLDER")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.land_child:
        land_child(args.land_child)
        return
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        work = Path(tmp)
        base = base_export(work / "base")
        print(" ".join(f"{h:>{w}}" for h, w in zip(HEADER, WIDTHS, strict=True)))
        for times in (int(s) for s in args.sizes.split(",")):
            files = replicate(base, times, work / f"x{times}" / "served")
            print(row(times, "export", measure(files, work / f"x{times}")), flush=True)
            for path in (work / f"x{times}" / "served").rglob("*.ndjson"):
                path.unlink()
            print(row(times, "land", run_child("--land-child", str(work / f"x{times}" / "out"))))
            shutil.rmtree(work / f"x{times}")


if __name__ == "__main__":
    main()
