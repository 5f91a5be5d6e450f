"""Bulk export download benchmark: 1x, 10x and 100x the CI data set, peak RSS measured per size.

The sandbox's own export (about 4.4k resources) is replicated with new ids into NDJSON files of
the same types, served by a scripted Bulk Data server on 127.0.0.1 (loading 400k resources into
sekmet would take about 15 minutes). Each size runs ``run_export`` (kick-off, poll, parallel
streamed download, line counts against the manifest, a parse of every line) in a child process
that reports its own peak RSS; RSS must stay flat as the export grows.

    .venv/bin/python bench/bulk.py [--sizes 1,10,100]
"""

from __future__ import annotations

import argparse
import resource
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
HEADER = ("size", "resources", "MB", "s", "res/s", "MB/s", "peak RSS MB")


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


def measure(files: list[tuple[str, Path, int]], work: Path) -> tuple[int, int, float, int]:
    from fhir_assets_tests.bulk.bulk_server import BulkServer, Reply

    with BulkServer() as server:
        server.token = TOKEN
        for resource_type, path, _ in files:
            server.files[path.name] = path
        outputs = [(t, p.name, n) for t, p, n in files]
        server.status = [Reply(200, server.manifest(outputs))]
        run = subprocess.run(
            [sys.executable, __file__, "--child", server.url, str(work / "out")],
            capture_output=True,
            text=True,
            check=True,
        )
    resources, size, seconds, peak_kib = orjson.loads(run.stdout.strip().splitlines()[-1])
    return resources, size, seconds, peak_kib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--child", nargs=2, metavar=("URL", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        work = Path(tmp)
        base = base_export(work / "base")
        print(" ".join(f"{h:>{w}}" for h, w in zip(HEADER, (5, 10, 8, 7, 9, 7, 12), strict=True)))
        for times in (int(s) for s in args.sizes.split(",")):
            files = replicate(base, times, work / f"x{times}" / "served")
            resources, size, seconds, peak_kib = measure(files, work / f"x{times}")
            mb = size / 1e6
            print(
                f"{times:>4}x {resources:>10} {mb:>8.1f} {seconds:>7.1f} "
                f"{resources / seconds:>9.0f} {mb / seconds:>7.1f} {peak_kib / 1024:>12.1f}"
            )
            for path in (work / f"x{times}").rglob("*.ndjson"):
                path.unlink()


if __name__ == "__main__":
    main()
