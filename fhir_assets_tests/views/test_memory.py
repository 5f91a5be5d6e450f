"""``fhir-assets views run`` keeps its peak RSS bounded whatever the NDJSON file's size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fhir_assets.views.library import DEFAULTS_DIR

# The child reports its own peak (VmHWM): ru_maxrss of a child starts at the parent's.
CHILD = """
import sys
from fhir_assets.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
status = open("/proc/self/status").read().splitlines()
print(next(line for line in status if line.startswith("VmHWM:")).split()[1], file=sys.stderr)
"""


def observations(path: Path, count: int) -> int:
    """Write ``count`` Observations of about 1.5 KB (a narrative, like real ones)."""
    narrative = {"status": "generated", "div": "<div>" + "Vital sign reading. " * 50 + "</div>"}
    with path.open("w") as out:
        for number in range(count):
            resource = {
                "resourceType": "Observation",
                "id": f"o{number}",
                "status": "final",
                "text": narrative,
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": f"Patient/p{number % 500}"},
                "valueQuantity": {"value": number % 200, "unit": "/min"},
                "effectiveDateTime": "2026-01-02T10:00:00Z",
            }
            out.write(json.dumps(resource) + "\n")
    return path.stat().st_size


def test_views_run_peak_rss_bounded(tmp_path: Path) -> None:
    source = tmp_path / "observations.ndjson"
    size = observations(source, 200_000)
    assert size > 250_000_000  # loading it whole would take about 1 GB
    out = tmp_path / "rows.parquet"
    view = str(DEFAULTS_DIR / "observation.json")
    args = ["views", "run", view, "--input", str(source), "--output", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True
    )
    assert "wrote" in result.stderr
    peak_mb = int(result.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mb < 400, peak_mb
    import duckdb

    rows = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(out)]).fetchone()
    assert rows == (200_000,)
