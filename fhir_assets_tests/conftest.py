"""Shared fixtures: a real seeded FHIR sandbox on 127.0.0.1, DuckDB files in tmp_path.

The seeded database is cached in ``<repo>/.fhir-assets`` (or ``FHIR_ASSETS_TEST_HOME``) and built
once under a file lock, so parallel workers share it; each worker runs its own server on a free
port, and every test that writes gets a server of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_assets.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("FHIR_ASSETS_TEST_HOME", REPO / ".fhir-assets"))


@pytest.fixture(scope="session")
def sandbox_home() -> Path:
    """The state folder that holds the sandbox keys and seeded-database cache."""
    return HOME


@pytest.fixture(scope="session")
def sandbox(sandbox_home: Path) -> Iterator[Sandbox]:
    """A read-only seeded sandbox shared by the tests of one worker. Do not write to it."""
    with Sandbox(home=sandbox_home) as server:
        yield server


@pytest.fixture
def make_sandbox(sandbox_home: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes of a test's own (fresh copy of the seeded data); stopped after the test."""
    started: list[Sandbox] = []

    def start(**kwargs: Any) -> Sandbox:
        server = Sandbox(home=sandbox_home, **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
