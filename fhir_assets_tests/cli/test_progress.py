"""Progress bars: drawn on a terminal, absent when output is captured."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

from fhir_assets.sandbox import Sandbox

from .conftest import CLEARED, CLI


def _on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """Run the CLI with stderr on a pseudo-terminal: (stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    with subprocess.Popen(
        [CLI, *args], stdout=subprocess.PIPE, stderr=terminal, text=True, env=base | env, cwd=cwd
    ) as process:
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is done with it
                break
            if not chunk:
                break
            shown += chunk
        stdout = process.stdout.read() if process.stdout else ""
        assert process.wait(timeout=120) == 0, shown.decode(errors="replace")
    os.close(controller)
    return stdout, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [f'{{"resourceType": "Patient", "id": "p{i}"}}' for i in range(500)]
    (folder / "Patient.ndjson").write_text("\n".join(lines) + "\n")
    return folder


def test_land_draws_a_bar_per_type_on_a_terminal(tmp_path: Path) -> None:
    env = {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    stdout, shown = _on_a_terminal(["land", str(_folder(tmp_path))], env, tmp_path)
    assert "Patient" in stdout.splitlines()[-1]
    assert "500 res" in shown  # resources so far
    assert "kB" in shown  # bytes read of the type's files
    assert "/s" in shown  # rate


def test_land_draws_nothing_when_output_is_captured(tmp_path: Path) -> None:
    env = os.environ | {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    done = subprocess.run(
        [CLI, "land", str(_folder(tmp_path))], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "\x1b[" not in done.stdout


def test_sync_draws_a_bar_with_the_servers_count(sandbox: Sandbox, tmp_path: Path) -> None:
    env = sandbox.environment() | {"FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    count = sandbox.counts(["Encounter"])["Encounter"]
    _, shown = _on_a_terminal(["sync", "--type", "Encounter"], env, tmp_path)
    assert f"{count}/{count}" in shown  # resources done / the server's count
    assert f"{count:,} res" in shown


def test_export_draws_a_bar_over_its_files(sandbox: Sandbox, tmp_path: Path) -> None:
    args = ["export", "--out", "exp", "--type", "Patient,Encounter"]
    counts = sandbox.counts(["Patient", "Encounter"])
    stdout, shown = _on_a_terminal(args, sandbox.environment(), tmp_path)
    assert "2/2 files" in shown
    assert f"{sum(counts.values()):,} res" in shown
    assert "MB" in shown
    assert "Patient" in stdout
