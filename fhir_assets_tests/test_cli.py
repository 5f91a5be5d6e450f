"""The `fhir-assets` command as a user runs it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

CLI = str(Path(sys.executable).parent / "fhir-assets")


def test_help_lists_the_commands() -> None:
    out = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("sandbox", "demo", "ui"):
        assert command in out


def test_sandbox_command_serves_until_terminated(sandbox_home: Path) -> None:
    process = subprocess.Popen(
        [CLI, "sandbox", "--home", str(sandbox_home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("export FHIR_SCOPES") or not line:
                break
        text = "".join(lines)
        base = re.search(r"FHIR base URL : (\S+)", text)
        assert base, text
        assert "export FHIR_PRIVATE_KEY_PATH=" in text
        assert "PRIVATE KEY" not in text
        metadata = requests.get(f"{base.group(1)}/metadata", timeout=10)
        assert metadata.json()["resourceType"] == "CapabilityStatement"
        unauthenticated = requests.get(f"{base.group(1)}/Patient", timeout=10)
        assert unauthenticated.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base.group(1)}/metadata", timeout=5)
