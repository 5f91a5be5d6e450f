"""Commands are imported only when run; the help ``fhir-assets --help`` lists for them is theirs."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
import typer

from fhir_assets.cli import app
from fhir_assets.cli.errors import CliGroup


@pytest.mark.parametrize("name", list(CliGroup.lazy))
def test_a_lazy_commands_listed_help_is_its_own(name: str) -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, CliGroup)
    command = group.get_command(click.Context(group), name)
    assert command is not None
    assert command.get_short_help_str(10_000) == CliGroup.lazy[name][1]


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    modules = sorted({module for module, _ in CliGroup.lazy.values()})
    probe = (
        "import sys\nfrom fhir_assets.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {modules!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    listed = done.stdout.split("Commands:")[1]
    assert all(f"  {name} " in listed for name in CliGroup.lazy), listed
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
