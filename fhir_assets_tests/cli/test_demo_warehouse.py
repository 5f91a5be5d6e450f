"""``fhir-assets demo``'s warehouse (``cli.demo.demo_warehouse``): the kind sets it up, and only
the kind's own setup failing ends the command there."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from fhir_assets.cli.demo import demo_warehouse


def test_the_duckdb_demo_lands_in_its_home_unless_a_file_is_named(tmp_path: Path) -> None:
    with demo_warehouse("duckdb", tmp_path, None) as settings:
        assert (settings.kind, settings.duckdb.path) == (
            "duckdb",
            str(tmp_path / "warehouse.duckdb"),
        )
    with demo_warehouse("duckdb", tmp_path, tmp_path / "mine.duckdb") as settings:
        assert settings.duckdb.path == str(tmp_path / "mine.duckdb")


def test_a_failure_of_the_demo_itself_is_not_taken_for_the_warehouse_s(tmp_path: Path) -> None:
    """A sandbox that cannot start or a failed run (RuntimeErrors of the demo's own ``with``
    block) reach the CLI's error handler as they are: not an exit 2 without a fix line."""
    with pytest.raises(RuntimeError, match="the sync_all run failed"):
        with demo_warehouse("duckdb", tmp_path, None):
            raise RuntimeError("the sync_all run failed")


def test_a_kind_that_cannot_set_up_ends_the_command_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    monkeypatch.delenv("SNOWFLAKE_HOST", raising=False)
    monkeypatch.setitem(__import__("sys").modules, "fakesnow", None)  # not installed
    with pytest.raises(typer.Exit) as ended:
        with demo_warehouse("snowflake", tmp_path, None):
            pytest.fail("the demo ran without a warehouse")
    assert ended.value.exit_code == 2
    assert "pip install fakesnow" in capsys.readouterr().err
