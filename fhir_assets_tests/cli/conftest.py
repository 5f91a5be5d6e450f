"""Run ``fhir-assets`` as a user does: a subprocess with a chosen environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "fhir-assets")
# Variables a developer's shell may set that would change what the commands read.
CLEARED = ("FHIR_", "SNOWFLAKE_", "DAGSTER_HOME")

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run(*args, env={...})``: the CLI in ``tmp_path`` with only ``env`` configured."""

    def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 180):
        base = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
        base["FHIR_DUCKDB_PATH"] = str(tmp_path / "warehouse.duckdb")
        return subprocess.run(
            [CLI, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=base | (env or {}),
            timeout=timeout,
        )

    return invoke


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 with nothing listening: held bound (never listening) for the test,
    so a connection is refused and no server of another test or xdist worker can take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])
