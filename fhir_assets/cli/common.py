"""What several commands share: the settings from the environment, signals, the sandbox."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import typer

HOME = typer.Option(
    Path(".fhir-assets"),
    "--home",
    envvar="FHIR_ASSETS_HOME",
    help="state folder: sandbox keys and cache, demo warehouse, DAGSTER_HOME",
)
POPULATION = typer.Option(
    150,
    "--population",
    envvar="FHIR_SANDBOX_POPULATION",
    help="synthetic population size (150 gives about 50 patients)",
)
SEED = typer.Option(7, "--seed", help="random seed of the synthetic data")
# A stable sandbox port keeps the base URL, and so the rows' source_server, the same across
# `make demo` and `make ui` runs; a busy port falls back to a free one.
DEFAULT_SANDBOX_PORT = 18090
PORT = typer.Option(
    DEFAULT_SANDBOX_PORT,
    "--port",
    envvar="FHIR_SANDBOX_PORT",
    help="sandbox port on 127.0.0.1 (0: any free port)",
)
SANDBOX_PORT = typer.Option(
    DEFAULT_SANDBOX_PORT,
    "--sandbox-port",
    envvar="FHIR_SANDBOX_PORT",
    help="sandbox port on 127.0.0.1 (0: any free port)",
)


def environ() -> dict[str, str]:
    """The process environment, the one source of the CLI's ``Settings``."""
    return dict(os.environ)


def sandbox(home: Path, population: int, seed: int, port: int = 0) -> Any:
    """A ``Sandbox`` (not started), or exit 2 when the ``sandbox`` extra is missing."""
    try:
        from ..sandbox import Sandbox
        from ..sandbox.server import port_is_free
    except ImportError as exc:
        typer.echo(
            f"the sandbox needs the 'sandbox' extra: pip install 'fhir-assets[sandbox]' "
            f"({exc.name} is missing)",
            err=True,
        )
        raise typer.Exit(2) from exc
    if port and not port_is_free(port):
        typer.echo(f"port {port} is busy; the sandbox takes a free one", err=True)
        port = 0
    return Sandbox(home=home, population=population, seed=seed, port=port)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM behave like Ctrl-C, so servers started so far are stopped on the way out."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def wait_for_signal(child: subprocess.Popen[bytes] | None = None) -> None:
    """Block until Ctrl-C or SIGTERM arrives, or until ``child`` exits."""
    with contextlib.suppress(KeyboardInterrupt):
        while child is None or child.poll() is None:
            time.sleep(0.5)
