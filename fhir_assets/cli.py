"""The ``fhir-assets`` command line."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from .cli_auth import auth_app, keys_app
from .views.cli import app as views_app

app = typer.Typer(
    help="FHIR R4 servers landed in DuckDB or Snowflake as Dagster assets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(auth_app, name="auth")

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

app.add_typer(views_app, name="views")


def _sandbox(home: Path, population: int, seed: int, port: int = 0):  # type: ignore[no-untyped-def]
    try:
        from .sandbox import Sandbox
        from .sandbox.server import port_is_free
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


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM behave like Ctrl-C, so servers started so far are stopped on the way out."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _wait_for_signal(child: subprocess.Popen[bytes] | None = None) -> None:
    """Block until Ctrl-C or SIGTERM arrives, or until ``child`` exits."""
    with contextlib.suppress(KeyboardInterrupt):
        while child is None or child.poll() is None:
            time.sleep(0.5)


@app.command()
def sandbox(
    home: Path = HOME, population: int = POPULATION, seed: int = SEED, port: int = PORT
) -> None:
    """Run a local FHIR R4 server with synthetic patients and SMART auth, until Ctrl-C."""
    from .sandbox.server import describe

    _interrupt_on_sigterm()
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
    sandbox_port: int = SANDBOX_PORT,
) -> None:
    """Sandbox -> every raw asset -> DuckDB, then print row counts per table."""
    from .demo import format_counts, run_demo

    logging.basicConfig(level=logging.WARNING)
    _interrupt_on_sigterm()
    path = duckdb_path or home / "warehouse.duckdb"
    typer.echo("starting the FHIR sandbox (the first start generates and loads the data)...")
    with _sandbox(home, population, seed, sandbox_port) as server:
        typer.echo(f"sandbox at {server.base_url}; materializing every raw asset into {path}")
        counts = run_demo(server, path)
    typer.echo(format_counts(counts))
    typer.echo(f"\nDuckDB file: {path}\nOpen the Dagster UI on the same setup: make ui")
    if any(c.server != c.warehouse for c in counts):
        raise typer.Exit(1)


@app.command()
def writeback(
    home: Path = HOME,
    population: int = POPULATION,
    seed: int = SEED,
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and diff; write nothing"),
) -> None:
    """Sandbox -> land Patient/Observation -> per-patient score -> write back (twice)."""
    from .writeback.demo import format_reports, run_writeback_demo

    logging.basicConfig(level=logging.WARNING)
    path = home / "writeback.duckdb"
    with _sandbox(home, population, seed) as server:
        typer.echo(f"sandbox at {server.base_url}; writing back from {path}")
        reports = run_writeback_demo(server, path, dry_run=dry_run)
    typer.echo(format_reports(reports))
    typer.echo(f"\naudit trail: table fhir_audit.writes in {path}")
    if any(report["failed"] for report in reports):
        raise typer.Exit(1)


@app.command()
def land(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of NDJSON"),
    validation: str = typer.Option(
        "fast", "--validation", envvar="FHIR_VALIDATION", help="fast (structural) or full (R4B)"
    ),
    server: str = typer.Option(
        None,
        "--server",
        help="source_server stored on the rows (default: the export's server for a folder "
        "written by `fhir-assets export`, else file://FOLDER)",
    ),
    sync_id: str = typer.Option(None, "--sync-id", help="sync id stored on the rows"),
    history: bool = typer.Option(
        False, "--history", help="also keep every version in fhir_raw.<type>_history"
    ),
    memory_limit: str = typer.Option(
        None,
        "--memory-limit",
        envvar="FHIR_DUCKDB_MEMORY_LIMIT",
        help="DuckDB memory limit while landing (default 128MB)",
    ),
) -> None:
    """Land a folder of .ndjson/.ndjson.gz files into the configured warehouse.

    The warehouse is FHIR_WAREHOUSE (duckdb: FHIR_DUCKDB_PATH, default
    .fhir-assets/warehouse.duckdb; snowflake: SNOWFLAKE_* variables).
    """
    import itertools
    import uuid
    from datetime import UTC, datetime

    from .catalog import BY_TYPE
    from .definitions import build_warehouse_resources
    from .warehouse.errors import WarehouseError
    from .warehouse.export_folder import (
        combine_by_type,
        export_origin,
        land_deletions,
        split_deletions,
    )
    from .warehouse.files import land_folder, plan_folder, transaction_time
    from .warehouse.landing import LandingOptions
    from .warehouse.protocol import Provenance

    logging.basicConfig(level=logging.WARNING)
    root = folder.resolve()
    plan, deleted = split_deletions(plan_folder(root), root)
    for path in plan.unknown:
        typer.echo(f"cannot tell the resource type of {path}: name it <Type>.ndjson", err=True)
    for path, problem in plan.unreadable:
        typer.echo(f"{path} looks like an input file but {problem}: not landed", err=True)
    try:
        origin = export_origin(root)  # a folder written by `fhir-assets export`
    except ValueError as exc:
        typer.echo(f"land failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    provenance = Provenance(
        source_server=server or (origin.source_server if origin else root.as_uri()),
        # an export keeps one sync id, so landing it again changes nothing (sql.py, rule 3)
        sync_id=sync_id or (origin.sync_id if origin else f"land-{uuid.uuid4()}"),
        ingested_at=datetime.now(UTC),
        # the export's transactionTime (state file, or a Bulk Data manifest.json)
        deleted_at=origin.transaction_time if origin else transaction_time(root),
    )
    broken: list[str] = []
    options = LandingOptions(validation=validation, history=history)
    landing = build_warehouse_resources()["landing"]
    if memory_limit and hasattr(landing, "memory_limit"):  # DuckDB only
        landing = landing.model_copy(update={"memory_limit": memory_limit})
    landing = landing.process_config_and_initialize()
    try:
        with landing.open_warehouse() as warehouse:
            typer.echo(f"{'type':26} {'seen':>9} {'landed':>9} {'updated':>9} {'deleted':>9} "
                       f"{'unchanged':>9} {'quarantined':>11}")  # fmt: skip
            results = itertools.chain(
                land_folder(warehouse, plan, root, provenance, options, broken),
                land_deletions(warehouse, deleted, root, provenance, options, BY_TYPE),
            )
            for r in combine_by_type(results):  # a type's resources and tombstones: one row
                typer.echo(f"{r.resource_type:26} {r.seen:9d} {r.landed:9d} {r.updated:9d} "
                           f"{r.deleted:9d} {r.unchanged:9d} {r.quarantined:11d}")  # fmt: skip
    except WarehouseError as exc:
        typer.echo(f"land failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for problem in broken:
        typer.echo(f"not landed whole: {problem}", err=True)
    if plan.unknown or plan.unreadable or broken:
        raise typer.Exit(1)


@app.command()
def ui(
    home: Path = HOME,
    population: int = POPULATION,
    seed: int = SEED,
    port: int = typer.Option(3000, "--port", help="Dagster UI port on 127.0.0.1"),
    sandbox_port: int = SANDBOX_PORT,
) -> None:
    """Start the sandbox and the Dagster UI (dagster dev) wired to it, until Ctrl-C."""
    from .demo import dagster_home

    _interrupt_on_sigterm()
    with _sandbox(home, population, seed, sandbox_port) as server:
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
            _wait_for_signal(process)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


@app.command("export")
def export_command(
    out: Path = typer.Option(..., "--out", help="export folder; run again on it to resume"),
    level: str = typer.Option("system", "--level", help="system | patient | group"),
    group: str = typer.Option(None, "--group", help="Group id (--level group)"),
    types: str = typer.Option(None, "--type", help="resource types, comma-separated"),
    since: str = typer.Option(None, "--since", help="only resources changed since INSTANT"),
    type_filter: list[str] = typer.Option(
        [], "--type-filter", help="e.g. Observation?status=final"
    ),
    max_connections: int = typer.Option(5, "--max-connections", help="parallel downloads"),
    cancel: bool = typer.Option(False, "--cancel", help="DELETE the export job recorded in --out"),
    base_url: str = typer.Option(..., "--base-url", envvar="FHIR_BASE_URL"),
    client_id: str = typer.Option(None, "--client-id", envvar="FHIR_CLIENT_ID"),
    private_key: str = typer.Option(None, "--private-key", envvar="FHIR_PRIVATE_KEY_PATH"),
    scopes: str = typer.Option("system/*.read", "--scopes", envvar="FHIR_SCOPES"),
    token_url: str = typer.Option(None, "--token-url", envvar="FHIR_TOKEN_URL"),
) -> None:
    """Bulk Data $export into --out (NDJSON per type), resumable after a crash or Ctrl-C."""
    from .fhir import FhirError, ServerSettings, connect
    from .fhir.bulk import BulkClient, BulkOptions, ExportRequest, cancel_export, format_instant
    from .fhir.bulk import run_export as run

    logging.basicConfig(level=logging.WARNING)
    _interrupt_on_sigterm()
    settings = ServerSettings(
        base_url=base_url,
        client_id=client_id,
        private_key=private_key,
        scopes=scopes,
        token_url=token_url,
    )
    try:
        request = ExportRequest(
            "group" if group and level == "system" else level,  # --group alone means group level
            group,
            tuple(t.strip() for t in (types or "").split(",") if t.strip()),
            format_instant(since) if since else None,
            tuple(type_filter),
        )
        with (
            connect(settings) as client,
            BulkClient(client, BulkOptions(max_connections=max_connections)) as bulk,
        ):
            if cancel:
                typer.echo("export job deleted" if cancel_export(bulk, out) else "no open job")
                return
            result = run(bulk, request, out, lambda p: typer.echo(_progress_line(p), err=True))
    except (FhirError, ValueError) as exc:
        typer.echo(f"export failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for resource_type, n in sorted(result.counts().items()):
        typer.echo(f"{resource_type:<28}{n:>10}")
    typer.echo(f"transactionTime (next --since): {result.manifest.transaction_time}")
    problems = [*result.fatal, *(f"{f}:{line}: {why}" for f, line, why in result.bad_lines())]
    for line in [*result.warnings, *problems]:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)


def _progress_line(progress: object) -> str:
    done, total = getattr(progress, "files_done", 0), getattr(progress, "files_total", 0)
    counter = f"[{done}/{total}] " if total else ""
    return f"{counter}{getattr(progress, 'message', '')}"


if __name__ == "__main__":
    app()
