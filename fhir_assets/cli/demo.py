"""``fhir-assets sandbox | demo | writeback | ui``: the local sandbox and what runs on it.

These commands start Dagster (inside the command, never at import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..processes import stop_group
from .common import (
    HOME,
    POPULATION,
    PORT,
    SANDBOX_PORT,
    SEED,
    environ,
    interrupt_on_sigterm,
    sandbox,
    wait_for_signal,
)

if TYPE_CHECKING:
    from ..warehouse.settings import WarehouseSettings


def sandbox_command(
    home: Path = HOME, population: int = POPULATION, seed: int = SEED, port: int = PORT
) -> None:
    """Run a local FHIR R4 server with synthetic patients and SMART auth, until Ctrl-C."""
    from ..sandbox.server import describe

    interrupt_on_sigterm()
    typer.echo("starting the FHIR sandbox (the first start generates and loads the data)...")
    with sandbox(home, population, seed, port) as server:
        typer.echo(describe(server))
        typer.echo("Ctrl-C stops it.", err=True)
        wait_for_signal()


@contextlib.contextmanager
def demo_warehouse(
    kind: str | None, home: Path, duckdb_path: Path | None
) -> Iterator[WarehouseSettings]:
    """The demo's ``WarehouseSettings``: FHIR_WAREHOUSE's kind (or ``kind``), its settings from
    the environment, made ready by the kind (``WarehouseKind.demo``: the DuckDB file
    ``duckdb_path``, else one in ``home``; Snowflake from SNOWFLAKE_*, or a local emulator).
    Only the kind's own setup failing ends the command here (exit 2): errors of the demo
    itself, raised in the caller's ``with`` block, pass through."""
    from ..settings import load
    from ..warehouse.kinds import warehouse_kind
    from ..warehouse.settings import WarehouseSettings

    settings = load(WarehouseSettings, environ())
    settings = dataclasses.replace(settings, kind=kind or settings.kind)  # checks the kind
    with contextlib.ExitStack() as stack:
        try:
            ready = stack.enter_context(
                warehouse_kind(settings.kind).demo(settings, home, typer.echo, duckdb_path)
            )
        except RuntimeError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        yield ready


def demo(
    home: Path = HOME,
    population: int = POPULATION,
    seed: int = SEED,
    duckdb_path: Path = typer.Option(
        None, "--duckdb", help="DuckDB file (default HOME/warehouse.duckdb)"
    ),
    warehouse: str = typer.Option(
        None, "--warehouse", help="duckdb or snowflake (default FHIR_WAREHOUSE, else duckdb)"
    ),
    sandbox_port: int = SANDBOX_PORT,
) -> None:
    """Sandbox -> every raw asset -> the warehouse, then print row counts per table."""
    from ..sandbox.demo import format_counts, run_demo
    from ..warehouse.kinds import warehouse_kind

    logging.basicConfig(level=logging.WARNING)
    interrupt_on_sigterm()
    typer.echo("starting the FHIR sandbox (the first start generates and loads the data)...")
    with (
        demo_warehouse(warehouse, home, duckdb_path) as settings,
        sandbox(home, population, seed, sandbox_port) as server,
    ):
        chosen = warehouse_kind(settings.kind)
        where = chosen.describe(settings)
        typer.echo(f"sandbox at {server.base_url}; materializing every raw asset into {where}")
        counts = run_demo(server, settings)
        typer.echo(format_counts(counts, settings.kind))
    typer.echo(f"\nwarehouse: {where}")
    if chosen.one_writer:  # a file: make ui opens HOME's
        typer.echo("Open the Dagster UI on the same setup: make ui")
    if any(c.server != c.warehouse for c in counts):
        raise typer.Exit(1)


def writeback(
    home: Path = HOME,
    population: int = POPULATION,
    seed: int = SEED,
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and diff; write nothing"),
    warehouse: str = typer.Option(None, "--warehouse", help="duckdb or snowflake"),
) -> None:
    """Sandbox -> land Patient/Observation -> per-patient score -> write back (twice)."""
    from ..sandbox.writeback_demo import format_reports, run_writeback_demo
    from ..warehouse.kinds import warehouse_kind

    logging.basicConfig(level=logging.WARNING)
    interrupt_on_sigterm()  # SIGTERM unwinds the with-blocks below, so the sandbox stops
    with (
        exclusive(home, "writeback"),
        demo_warehouse(warehouse, home, home / "writeback.duckdb") as settings,
        sandbox(home, population, seed) as server,
    ):
        where = warehouse_kind(settings.kind).describe(settings)
        typer.echo(f"sandbox at {server.base_url}; writing back from {where}")
        reports = run_writeback_demo(server, settings, dry_run=dry_run)
    typer.echo(format_reports(reports))
    typer.echo(f"\naudit trail: table fhir_audit.writes in {where}")
    if any(report["failed"] for report in reports):
        raise typer.Exit(1)


@contextlib.contextmanager
def exclusive(home: Path, command: str) -> Iterator[None]:
    """One ``command`` at a time on ``home``: runs share its DuckDB file and Dagster instance
    (whose first use creates SQLite tables: two at once failed with "table jobs already
    exists"), so a second run waits for the first, saying so."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / f".{command}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            typer.echo(f"another fhir-assets {command} is running on {home}; waiting", err=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ui(
    home: Path = HOME,
    population: int = POPULATION,
    seed: int = SEED,
    port: int = typer.Option(3000, "--port", help="Dagster UI port on 127.0.0.1"),
    sandbox_port: int = SANDBOX_PORT,
) -> None:
    """Start the sandbox and the Dagster UI (dg dev) wired to it, until Ctrl-C."""
    from ..sandbox.demo import dagster_home, demo_environment

    interrupt_on_sigterm()
    with sandbox(home, population, seed, sandbox_port) as server:
        env = (
            os.environ
            | server.environment()
            | demo_environment()  # the partitions the demo filled
            | {
                "FHIR_DUCKDB_PATH": str(home.resolve() / "warehouse.duckdb"),
                "DAGSTER_HOME": str(dagster_home(home)),
            }
        )
        set_pool_limits(env)
        dg = Path(sys.executable).parent / "dg"
        typer.echo(f"sandbox at {server.base_url}; Dagster UI at http://127.0.0.1:{port}")
        # dg dev (dagster dev's successor: no SupersessionWarning; the project from [tool.dg] in
        # pyproject.toml) started from a non-interactive shell ignores SIGINT/SIGTERM unless the
        # default handlers are restored; it runs in its own process group so it can be stopped.
        process = subprocess.Popen(  # noqa: S603 (fixed argv)
            [str(dg), "dev", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            start_new_session=True,
            preexec_fn=lambda: [
                signal.signal(s, signal.SIG_DFL)  # type: ignore[func-returns-value]
                for s in (signal.SIGINT, signal.SIGTERM)
            ],
        )
        try:
            wait_for_signal(process)
        finally:
            stop_group(process, timeout=60)


def set_pool_limits(env: Mapping[str, str]) -> None:
    """The sandbox profile's pool limits in the UI's instance, as a deployment runs
    ``fhir-assets pools --apply``: runs launched from the UI queue on them (limits set by hand
    are kept)."""
    from dagster import DagsterInstance

    from ..settings import Settings
    from .pools import apply_defaults

    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        changed = apply_defaults(Settings.from_environ(env), instance)
    if changed:
        typer.echo("pool limits set: " + ", ".join(f"{k}={v}" for k, v in changed.items()))


def register(app: typer.Typer) -> None:
    """Add the sandbox commands to ``app``."""
    app.command("sandbox")(sandbox_command)
    app.command()(demo)
    app.command()(writeback)
    app.command()(ui)
