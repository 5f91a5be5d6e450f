"""The operation commands and their library modules import neither Dagster nor pandas."""

from __future__ import annotations

import subprocess
import sys


def test_operation_commands_import_no_dagster_or_pandas() -> None:
    code = (
        "import sys\n"
        "from fhir_assets.cli import app\n"
        "from typer.testing import CliRunner\n"
        "import fhir_assets.cli.operations, fhir_assets.cohort, fhir_assets.conformance\n"
        "import fhir_assets.extraction, fhir_assets.fhir.operations\n"
        "for name in ('everything', 'validate', 'extract'):\n"
        "    assert CliRunner().invoke(app, [name, '--help']).exit_code == 0\n"
        "print(sorted(m for m in ('dagster', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
