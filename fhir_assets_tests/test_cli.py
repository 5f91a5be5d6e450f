"""The `fhir-assets` command as a user runs it."""

from __future__ import annotations

import re
import signal
import socket
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
    busy = socket.socket()  # the requested port is taken: the sandbox must pick another
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    process = subprocess.Popen(
        [CLI, "sandbox", "--home", str(sandbox_home), "--port", str(taken)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
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
        assert f":{taken}/" not in base.group(1)
        assert "export FHIR_PRIVATE_KEY_PATH=" in text
        assert "PRIVATE KEY" not in text
        metadata = requests.get(f"{base.group(1)}/metadata", timeout=10)
        assert metadata.json()["resourceType"] == "CapabilityStatement"
        unauthenticated = requests.get(f"{base.group(1)}/Patient", timeout=10)
        assert unauthenticated.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0  # its sandbox's stop, on a loaded machine
        busy.close()
    assert process.stderr is not None
    assert f"port {taken} is busy" in process.stderr.read()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base.group(1)}/metadata", timeout=5)
