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


def test_cli_land_imports_no_dagster_or_pandas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The CLI's data path lands a folder in a fresh process and never imports Dagster, nor
    pandas (pyarrow's ``pa.array`` would import it: 0.4 s and ~50 MB), also when it quarantines."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\nnot json\n')
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from fhir_assets.cli import app\n"
        f"result = CliRunner().invoke(app, ['land', {str(folder)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.output.splitlines()[-1].split()[:3])\n"
        "print(sorted(m for m in ('dagster', 'fhir_assets.definitions', 'dagster_duckdb', "
        "'pandas') if m in sys.modules))\n"
    )
    env = {
        **__import__("os").environ,
        "FHIR_DUCKDB_PATH": str(tmp_path / "wh" / "w.duckdb"),
        "FHIR_WAREHOUSE": "duckdb",
        "FHIR_PARTITIONS": "broken",  # a Dagster-only setting cannot break the data path
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    landed, modules = out.stdout.strip().splitlines()
    assert landed == "['Patient', '2', '1']"  # seen 2, landed 1 (and 1 quarantined)
    assert modules == "[]"


def test_nothing_imports_definitions_and_the_engine_holds_no_demo() -> None:
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "fhir_assets"
    statement = re.compile(
        r"^\s*(from\s+(fhir_assets\.|\.+)definitions\s+import|import\s+fhir_assets\.definitions"
        r"|from\s+(fhir_assets|\.+)\s+import\s+definitions)",
        re.MULTILINE,
    )
    importers = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if statement.search(path.read_text())
    ]
    assert importers == []
    assert not (package / "writeback" / "demo.py").exists()
    assert not (package / "demo.py").exists()
