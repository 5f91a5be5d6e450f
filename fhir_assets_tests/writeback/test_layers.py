"""The write client is part of the pure library; the write-back engine runs without Dagster."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "banned"),
    [("fhir_assets.fhir.write", ("dagster", "pandas")), ("fhir_assets.writeback", ("dagster",))],
)
def test_module_imports_no_heavy_layers(module: str, banned: tuple[str, ...]) -> None:
    code = (
        f"import sys, {module}; print(','.join(sorted(m for m in {banned!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
