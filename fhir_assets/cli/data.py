"""``fhir-assets land`` and ``fhir-assets export``: the data path, without Dagster."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from .common import environ, interrupt_on_sigterm

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..warehouse.batches import Block
    from .progress import Bars

# warehouse.files.PATTERNS (a test keeps them equal): importing that module imports the
# landing code, which `land` of a folder without NDJSON need not pay for.
NDJSON_PATTERNS = ("*.ndjson", "*.ndjson.gz")


def land(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of NDJSON"),
    validation: str = typer.Option(
        None, "--validation", help="fast (structural) or full (R4B); default FHIR_VALIDATION"
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
        help="DuckDB memory limit while landing (default FHIR_DUCKDB_MEMORY_LIMIT or 128MB)",
    ),
) -> None:
    """Land a folder of .ndjson/.ndjson.gz files into the configured warehouse.

    The warehouse is FHIR_WAREHOUSE (duckdb: FHIR_DUCKDB_PATH, default
    .fhir-assets/warehouse.duckdb; snowflake: SNOWFLAKE_* variables).
    """
    import itertools
    import uuid
    from datetime import UTC, datetime

    root = folder.resolve()
    # Nothing to land: say so before importing the landing code (pyarrow, DuckDB), whose
    # import is most of this command's start-up. (A directory named like input is no file, but
    # planning the folder reports it.)
    if not any(True for pattern in NDJSON_PATTERNS for _ in root.rglob(pattern)):
        typer.echo(f"no .ndjson or .ndjson.gz files in {root}", err=True)
        return

    from ..settings import SyncSettings, load
    from ..warehouse.errors import WarehouseError
    from ..warehouse.export_folder import (
        combine_by_type,
        export_origin,
        land_deletions,
        split_deletions,
    )
    from ..warehouse.files import land_folder, plan_folder, transaction_time, unknown_reason
    from ..warehouse.landing import LandingOptions
    from ..warehouse.protocol import Provenance
    from ..warehouse.settings import WarehouseSettings, open_warehouse
    from .progress import bars, counted_blocks

    env = environ()
    sync = load(SyncSettings, env)
    warehouse_settings = load(WarehouseSettings, env)
    if memory_limit:
        duckdb = dataclasses.replace(warehouse_settings.duckdb, memory_limit=memory_limit)
        warehouse_settings = dataclasses.replace(warehouse_settings, duckdb=duckdb)
    plan, deleted = split_deletions(plan_folder(root), root)
    for path in plan.unknown:
        typer.echo(f"cannot tell the resource type of {path}: {unknown_reason(path)}", err=True)
    for path, problem in plan.unreadable:
        typer.echo(f"{path} looks like an input file but {problem}: not landed", err=True)
    try:
        origin = export_origin(root)  # a folder written by `fhir-assets export`
    except ValueError as exc:
        typer.echo(f"land failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    provenance = Provenance(
        source_server=server or (origin.source_server if origin else root.as_uri()),
        # an export keeps one sync id, so landing it again changes nothing (merge_sql.py, rule 3)
        sync_id=sync_id or (origin.sync_id if origin else f"land-{uuid.uuid4()}"),
        ingested_at=datetime.now(UTC),
        # the export's transactionTime (state file, or a Bulk Data manifest.json)
        deleted_at=origin.transaction_time if origin else transaction_time(root),
    )
    broken: list[str] = []
    options = LandingOptions(validation=validation or sync.validation, history=history,
                             max_line_bytes=sync.max_line_bytes)  # fmt: skip
    tasks: dict[str, int] = {}
    try:
        with open_warehouse(warehouse_settings) as warehouse, bars("bytes") as shown:

            def watch(resource_type: str, paths: list[Path], blocks: Iterable[Block]) -> Any:
                """A bar per type, moved by the bytes of its blocks."""
                plain = all(p.suffix != ".gz" for p in paths)  # a .gz file's size is not its bytes
                total = sum(p.stat().st_size for p in paths) if plain else None
                tasks[resource_type] = task = shown.add(resource_type, total)
                return counted_blocks(blocks, shown, task)

            results = itertools.chain(
                land_folder(warehouse, plan, root, provenance, options, broken, watch),
                land_deletions(warehouse, deleted, root, provenance, options),
            )
            combined = combine_by_type(results)  # a type's resources and tombstones: one row
            for task in tasks.values():
                shown.finish(task)
    except WarehouseError as exc:
        typer.echo(f"land failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{'type':26} {'seen':>9} {'landed':>9} {'updated':>9} {'deleted':>9} "
               f"{'unchanged':>9} {'quarantined':>11}")  # fmt: skip
    for r in combined:
        typer.echo(f"{r.resource_type:26} {r.seen:9d} {r.landed:9d} {r.updated:9d} "
                   f"{r.deleted:9d} {r.unchanged:9d} {r.quarantined:11d}")  # fmt: skip
    for problem in broken:
        typer.echo(f"not landed whole: {problem}", err=True)
    if plan.unknown or plan.unreadable or broken:
        raise typer.Exit(1)


def export(
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
    base_url: str = typer.Option(None, "--base-url", help="default FHIR_BASE_URL"),
    client_id: str = typer.Option(None, "--client-id", help="default FHIR_CLIENT_ID"),
    private_key: str = typer.Option(None, "--private-key", help="default FHIR_PRIVATE_KEY_PATH"),
    scopes: str = typer.Option(None, "--scopes", help="default FHIR_SCOPES or system/*.read"),
    token_url: str = typer.Option(None, "--token-url", help="default FHIR_TOKEN_URL"),
) -> None:
    """Bulk Data $export into --out (NDJSON per type), resumable after a crash or Ctrl-C.

    Authenticates like the assets (every FHIR_* auth setting: Backend Services, client secret,
    FHIR_PRIVATE_KEY, FHIR_JKU, ...); the options override single settings.
    """
    from ..fhir import connect
    from ..fhir.bulk import BulkClient, BulkOptions, ExportRequest, cancel_export, format_instant
    from ..fhir.bulk import run_export as run
    from ..settings import FhirSettings, SyncSettings, load
    from .probe import checked_server
    from .progress import bars

    interrupt_on_sigterm()
    overrides = {
        "base_url": base_url,
        "client_id": client_id,
        "private_key_path": private_key,
        "token_url": token_url,
    }
    fhir = dataclasses.replace(
        load(FhirSettings, environ()), **{k: v for k, v in overrides.items() if v}
    )
    # a longer line is reported as bad by the export, as the landing quarantines it
    max_line_bytes = load(SyncSettings, environ()).max_line_bytes
    options = BulkOptions(max_connections=max_connections, max_line_bytes=max_line_bytes)
    # Failures (unreachable host, not a FHIR server, bad key, refused export) reach the
    # CliGroup, which prints them as "error: ..." with the fix.
    # --cancel only DELETEs the status URL recorded in --out: no need to probe the base URL.
    settings = checked_server(
        fhir, scopes=scopes or fhir.scopes or "system/*.read", probe=not cancel
    )
    request = ExportRequest(
        "group" if group and level == "system" else level,  # --group alone means group level
        group,
        tuple(t.strip() for t in (types or "").split(",") if t.strip()),
        format_instant(since) if since else None,
        tuple(type_filter),
    )
    with (
        connect(settings) as client,
        BulkClient(client, options) as bulk,
    ):
        if cancel:
            typer.echo("export job deleted" if cancel_export(bulk, out) else "no open job")
            return
        with bars("files") as shown:
            result = run(bulk, request, out, _ExportProgress(shown))
    for resource_type, n in sorted(result.counts().items()):
        typer.echo(f"{resource_type:<28}{n:>10}")
    typer.echo(f"transactionTime (next --since): {result.manifest.transaction_time}")
    problems = [*result.fatal, *(f"{f}:{line}: {why}" for f, line, why in result.bad_lines())]
    for line in [*result.warnings, *problems]:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)


class _ExportProgress:
    """The export's steps as lines, and a bar over its files (resources, MB, rate, ETA)."""

    def __init__(self, shown: Bars) -> None:
        self.bars = shown
        self.task: int | None = None

    def __call__(self, progress: object) -> None:
        phase = getattr(progress, "phase", "")
        done, total = getattr(progress, "files_done", 0), getattr(progress, "files_total", 0)
        megabytes = f"export {getattr(progress, 'bytes_done', 0) / 1e6:,.1f} MB"
        if self.task is None and phase in ("manifest", "file") and total:
            self.task = self.bars.add("export 0.0 MB", total)
            self.bars.advance(self.task, done)
        if self.task is not None and phase == "file":
            lines = re.search(r"(\d+) lines$", getattr(progress, "message", ""))
            self.bars.advance(self.task, 1, int(lines.group(1)) if lines else 0,
                              description=megabytes)  # fmt: skip
        counter = f"[{done}/{total}] " if total else ""
        if not self.bars.shown or phase != "file":  # the bar shows files done
            self.bars.log(f"{counter}{getattr(progress, 'message', '')}")


def register(app: typer.Typer) -> None:
    """Add the data commands to ``app``."""
    app.command()(land)
    app.command("export")(export)
