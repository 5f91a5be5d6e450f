"""A PostgreSQL server per test module, and a DAGSTER_HOME holding deploy/dagster.yaml."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .postgres import Postgres, PostgresUnavailableError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL on 127.0.0.1; the test is skipped only when none can start here."""
    try:
        server = Postgres()
        server.start()
    except PostgresUnavailableError as exc:
        pytest.skip(f"PostgreSQL cannot start here: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the production dagster.yaml and nothing else."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    return home
