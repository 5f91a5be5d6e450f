"""Start-up and end-to-end speed of the ``fhir-assets`` command, as ratios measured in one run.

Each command runs several times, interleaved with ``python -c pass`` of the same interpreter,
and the median is kept, so a loaded machine slows both sides alike:

- ``fhir-assets --help`` and ``fhir-assets land EMPTY_DIR``: wall time / ``python -c pass``
  (targets: at most 3x and 5x);
- ``fhir-assets land`` of ~300 MB of Observations (``bench/landing.py``'s generator) into a new
  DuckDB file: MB/s end to end / the orjson parse rate of the same file in one process (target
  at least 1.0x, issue #26; 0.5x before), and the command's peak RSS (``os.wait4`` of that
  child; target < 350 MB) and CPU seconds (user + system: under load, wall time follows them).

The load average is printed with the figures: on a shared machine the land ratio moves with it.

    python bench/cli.py [--cli .venv/bin/fhir-assets] [--repeat 5] [--mb 300] [--no-big]

``--cli`` can point at another checkout's command to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from landing import CACHE, generate

TARGETS = {"help": 3.0, "land_empty": 5.0, "land_rate": 1.0, "rss_mb": 350.0}


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds of one run of ``argv`` (output discarded)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        error = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"{' '.join(argv)} failed ({status}): {error}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def start_up(cli: Path, repeat: int, work: Path) -> dict[str, float]:
    """Median wall time of each short command, interleaved with ``python -c pass``."""
    python = str(cli.parent / "python")
    empty, one = work / "empty", work / "one"
    empty.mkdir(exist_ok=True)
    one.mkdir(exist_ok=True)  # one resource: the fixed cost of a land that opens the warehouse
    (one / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n')
    env = os.environ | {"FHIR_DUCKDB_PATH": str(work / "empty.duckdb"), "FHIR_WAREHOUSE": "duckdb"}
    runs: dict[str, list[float]] = {"pass": [], "help": [], "land_empty": [], "land_one": []}
    for _ in range(repeat):
        runs["pass"].append(timed([python, "-c", "pass"])[0])
        runs["help"].append(timed([str(cli), "--help"])[0])
        runs["land_empty"].append(timed([str(cli), "land", str(empty)], env)[0])
        runs["land_one"].append(timed([str(cli), "land", str(one)], env)[0])
    return {name: statistics.median(times) for name, times in runs.items()}


def orjson_rate(path: Path, python: str) -> tuple[float, float]:
    """MB/s of parsing every line of ``path`` with orjson, in a child of ``python``, and the
    child's CPU seconds (user + system, its start-up included)."""
    code = (
        "import orjson, sys, time\n"
        "t = time.perf_counter()\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        "    n = sum(1 for line in f if orjson.loads(line))\n"
        "print(time.perf_counter() - t)\n"
    )
    child = subprocess.Popen([python, "-c", code, str(path)], stdout=subprocess.PIPE)
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"the orjson parse of {path} failed ({status})")
    return path.stat().st_size / 1e6 / float(out), usage.ru_utime + usage.ru_stime


def big_land(cli: Path, path: Path, repeat: int, work: Path) -> dict[str, float]:
    """End-to-end ``fhir-assets land`` of ``path``: median MB/s, max peak RSS, orjson MB/s."""
    folder = work / "big"
    folder.mkdir(exist_ok=True)
    target = folder / "Observation.ndjson"
    if not target.exists():
        target.symlink_to(path)
    rates, peaks, parse, cpu, parse_cpu = [], [], [], [], []
    for n in range(repeat):
        rate, used = orjson_rate(path, str(cli.parent / "python"))
        parse.append(rate)
        parse_cpu.append(used)
        env = os.environ | {
            "FHIR_DUCKDB_PATH": str(work / f"big-{n}.duckdb"),
            "FHIR_WAREHOUSE": "duckdb",
        }
        seconds, rss, used = timed([str(cli), "land", str(folder)], env)
        (work / f"big-{n}.duckdb").unlink(missing_ok=True)
        rates.append(path.stat().st_size / 1e6 / seconds)
        peaks.append(rss)
        cpu.append(used)
    return {
        "land_mb_s": statistics.median(rates),
        "orjson_mb_s": statistics.median(parse),
        "land_rate": statistics.median(rates) / statistics.median(parse),
        "rss_mb": max(peaks),
        "cpu_s": statistics.median(cpu),
        # the same ratio by CPU time: steadier under load, but blind to the two threads' overlap
        "cpu_rate": statistics.median(parse_cpu) / statistics.median(cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", type=Path, default=Path(sys.executable).parent / "fhir-assets")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--big-repeat", type=int, default=3)
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--no-big", action="store_true", help="only the start-up figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fhir-cli-bench-") as tmp:
        work = Path(tmp)
        times = start_up(args.cli, args.repeat, work)
        figures = {name: times[name] / times["pass"] for name in ("help", "land_empty", "land_one")}
        print(f"cli: {args.cli}  (median of {args.repeat}; load average {load()})")
        print(f"python -c pass          {times['pass']:7.3f} s")
        for name in ("help", "land_empty", "land_one"):
            target = f"  (target <= {TARGETS[name]:g}x)" if name in TARGETS else ""
            print(f"{name:22}  {times[name]:7.3f} s  {figures[name]:5.2f}x pass{target}")
        if not args.no_big:
            path = generate(CACHE / f"observations-{args.mb}mb.ndjson", args.mb)
            big = big_land(args.cli, path, args.big_repeat, work)
            print(f"land {args.mb} MB            {big['land_mb_s']:7.1f} MB/s vs orjson "
                  f"{big['orjson_mb_s']:.1f} MB/s = {big['land_rate']:.2f}x "
                  f"(target >= {TARGETS['land_rate']:g}x); "
                  f"peak RSS {big['rss_mb']:.0f} MB (target < 350); land CPU "
                  f"{big['cpu_s']:.1f} s ({big['cpu_rate']:.2f}x orjson's by CPU time); "
                  f"load average {load()}")  # fmt: skip


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine slows both sides of a
    ratio, but not always alike (``land`` runs two threads, the orjson parse one)."""
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


if __name__ == "__main__":
    main()
