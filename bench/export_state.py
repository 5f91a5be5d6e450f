"""Export state cost per finished file: the journal makes it O(1), so doubling the manifest
doubles the time (linear), where rewriting the whole state per file was quadratic. Prints
figures; asserts nothing. ``python bench/export_state.py [N ...]`` (default 2000 4000 8000)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from fhir_assets.fhir.bulk.manifest import Manifest, OutputFile
from fhir_assets.fhir.bulk.state import ExportState, FileDone


def run(files: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        state = ExportState(Path(folder))
        outputs = tuple(OutputFile("Patient", f"https://files.example/{i}") for i in range(files))
        state.manifest = Manifest("2026-01-01T00:00:00Z", "https://ehr.example/$export", True,
                                  outputs)  # fmt: skip
        state.save()
        started = time.perf_counter()
        for i in range(files):
            state.mark_done(FileDone(f"output/{i:05d}.Patient.ndjson", "Patient", "output", 1, 1))
        state.finished = True
        state.save()  # the compaction at the end
        return time.perf_counter() - started


def main() -> None:
    for files in [int(a) for a in sys.argv[1:]] or [2000, 4000, 8000]:
        seconds = run(files)
        print(f"{files:7d} files: {seconds:7.2f} s  {seconds / files * 1e6:8.1f} us/file")


if __name__ == "__main__":
    main()
