"""The layering rules of STYLE.md, checked on the real imports."""

import subprocess
import sys


def test_fhir_client_library_imports_no_dagster_or_pandas() -> None:
    code = (
        "import sys, fhir_assets.fhir; "
        "bad = sorted(m for m in ('dagster', 'pandas') if m in sys.modules); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
