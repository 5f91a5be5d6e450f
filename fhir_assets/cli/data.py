"""``fhir-assets land`` and ``fhir-assets export``: the data path, without Dagster."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .common import environ, interrupt_on_sigterm

if TYPE_CHECKING:
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
        None, "--server", help="source_server stored on the rows (default: file://FOLDER)"
    ),
    sync_id: str = typer.Option(None, "--sync-id", help="sync id stored on the rows"),
    history: bool = typer.Option(
        False, "--history", help="also keep every version in fhir_raw.<type>_history"
    ),
) -> None:
    """Land a folder of .ndjson/.ndjson.gz files into the configured warehouse.

    The warehouse is FHIR_WAREHOUSE (duckdb: FHIR_DUCKDB_PATH, default
    .fhir-assets/warehouse.duckdb; snowflake: SNOWFLAKE_* variables).
    """
    import uuid
    from datetime import UTC, datetime

    root = folder.resolve()
    # Nothing to land: say so before importing the landing code (pyarrow, DuckDB), whose
    # import is most of this command's start-up.
    if not any(p.is_file() for pattern in NDJSON_PATTERNS for p in root.rglob(pattern)):
        typer.echo(f"no .ndjson or .ndjson.gz files in {root}", err=True)
        return

    from ..settings import SyncSettings, load
    from ..warehouse.files import folder_entries, plan_folder, transaction_time
    from ..warehouse.landing import LandingOptions, land
    from ..warehouse.protocol import Provenance
    from ..warehouse.settings import WarehouseSettings, open_warehouse
    from .progress import bars, counted_blocks

    env = environ()
    sync = load(SyncSettings, env)
    plan = plan_folder(root)
    for path in plan.unknown:
        typer.echo(f"cannot tell the resource type of {path}: name it <Type>.ndjson", err=True)
    provenance = Provenance(
        source_server=server or root.as_uri(),
        sync_id=sync_id or f"land-{uuid.uuid4()}",
        ingested_at=datetime.now(UTC),
        deleted_at=transaction_time(root),  # a Bulk Data manifest's transactionTime
    )
    options = LandingOptions(validation=validation or sync.validation, history=history)
    typer.echo(f"{'type':26} {'seen':>9} {'landed':>9} {'updated':>9} {'deleted':>9} "
               f"{'unchanged':>9} {'quarantined':>11}")  # fmt: skip
    with open_warehouse(load(WarehouseSettings, env)) as warehouse, bars("bytes") as shown:
        for resource_type, paths in sorted(plan.files.items()):
            # land_folder's loop, with a bar per type fed by the blocks read
            plain = all(p.suffix != ".gz" for p in paths)  # a .gz file's size is not its bytes
            task = shown.add(resource_type, sum(p.stat().st_size for p in paths) if plain else None)
            blocks = counted_blocks(folder_entries(paths, root), shown, task)
            r = land(warehouse, resource_type, blocks, provenance, options)
            shown.finish(task)
            typer.echo(f"{r.resource_type:26} {r.seen:9d} {r.landed:9d} {r.updated:9d} "
                       f"{r.deleted:9d} {r.unchanged:9d} {r.quarantined:11d}")  # fmt: skip
    if plan.unknown:
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
    from ..settings import FhirSettings, load
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
        BulkClient(client, BulkOptions(max_connections=max_connections)) as bulk,
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
