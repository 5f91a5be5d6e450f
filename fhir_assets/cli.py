"""The ``fhir-assets`` command line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import typer

from .views.cli import app as views_app

app = typer.Typer(
    help="FHIR R4 servers landed in DuckDB or Snowflake as Dagster assets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
PORT = typer.Option(0, "--port", help="port on 127.0.0.1 (0: any free port)")

app.add_typer(views_app, name="views")


def _sandbox(home: Path, population: int, seed: int, port: int = 0):  # type: ignore[no-untyped-def]
    try:
        from .sandbox import Sandbox
    except ImportError as exc:
        typer.echo(
            f"the sandbox needs the 'sandbox' extra: pip install 'fhir-assets[sandbox]' "
            f"({exc.name} is missing)",
            err=True,
        )
        raise typer.Exit(2) from exc
    return Sandbox(home=home, population=population, seed=seed, port=port)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


@app.command()
def sandbox(
    home: Path = HOME, population: int = POPULATION, seed: int = SEED, port: int = PORT
) -> None:
    """Run a local FHIR R4 server with synthetic patients and SMART auth, until Ctrl-C."""
    from .sandbox.server import describe

    typer.echo("starting the FHIR sandbox (the first start generates and loads the data)...")
    with _sandbox(home, population, seed, port) as server:
        typer.echo(describe(server))
        typer.echo("Ctrl-C stops it.", err=True)
        _wait_for_signal()


@app.command()
def demo(
    home: Path = HOME,
    population: int = POPULATION,
    seed: int = SEED,
    duckdb_path: Path = typer.Option(
        None,
        "--duckdb",
        envvar="FHIR_DUCKDB_PATH",
        help="DuckDB file (default HOME/warehouse.duckdb)",
    ),
) -> None:
    """Sandbox -> every raw asset -> DuckDB, then print row counts per table."""
    from .demo import format_counts, run_demo

    logging.basicConfig(level=logging.WARNING)
    path = duckdb_path or home / "warehouse.duckdb"
    typer.echo("starting the FHIR sandbox (the first start generates and loads the data)...")
    with _sandbox(home, population, seed) as server:
        typer.echo(f"sandbox at {server.base_url}; materializing every raw asset into {path}")
        counts = run_demo(server, path)
    typer.echo(format_counts(counts))
    typer.echo(f"\nDuckDB file: {path}\nOpen the Dagster UI on the same setup: make ui")
    if any(c.server != c.warehouse for c in counts):
        raise typer.Exit(1)


@app.command()
def ui(
    home: Path = HOME,
    population: int = POPULATION,
    seed: int = SEED,
    port: int = typer.Option(3000, "--port", help="Dagster UI port on 127.0.0.1"),
) -> None:
    """Start the sandbox and the Dagster UI (dagster dev) wired to it, until Ctrl-C."""
    from .demo import dagster_home

    with _sandbox(home, population, seed) as server:
        env = (
            os.environ
            | server.environment()
            | {
                "FHIR_DUCKDB_PATH": str(home.resolve() / "warehouse.duckdb"),
                "DAGSTER_HOME": str(dagster_home(home)),
            }
        )
        dagster = Path(sys.executable).parent / "dagster"
        typer.echo(f"sandbox at {server.base_url}; Dagster UI at http://127.0.0.1:{port}")
        # dagster dev started from a non-interactive shell ignores SIGINT/SIGTERM unless the
        # default handlers are restored; it runs in its own process group so it can be stopped.
        process = subprocess.Popen(  # noqa: S603 (fixed argv)
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            start_new_session=True,
            preexec_fn=lambda: [
                signal.signal(s, signal.SIG_DFL)  # type: ignore[func-returns-value]
                for s in (signal.SIGINT, signal.SIGTERM)
            ],
        )
        try:
            _wait_for_signal()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


if __name__ == "__main__":
    app()
