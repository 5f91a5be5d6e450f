"""``fhir-assets land`` of a folder without NDJSON: nothing opened, nothing heavy imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fhir_assets.cli.data import NDJSON_PATTERNS
from fhir_assets.warehouse.files import PATTERNS

from .conftest import Run


def test_land_patterns_are_the_warehouse_patterns() -> None:
    assert NDJSON_PATTERNS == PATTERNS


def test_land_of_a_folder_without_ndjson_opens_no_warehouse(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.txt").write_text("not NDJSON")
    done = run("land", str(folder))
    assert done.returncode == 0
    assert done.stderr.strip() == f"no .ndjson or .ndjson.gz files in {folder}"
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_help_and_empty_land_import_no_duckdb_pyarrow_or_requests(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from fhir_assets.cli import app\n"
        "for args in (['--help'], ['land', sys.argv[1]]):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "heavy = ('duckdb', 'pyarrow', 'requests', 'dagster', 'fhir_assets.views.compiler')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ | {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
