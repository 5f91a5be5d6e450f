"""``fhir-assets sync``: search the configured server and land into the configured warehouse.

The same library path as the raw assets (``fhir_assets.sync`` for the server's profile and
searches, ``warehouse.landing.land`` for the MERGE), in this process, without Dagster: for
scripts and first tries. Rows carry the same ``source_server`` as the assets' rows, so either
way continues from where the other stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from .common import environ, interrupt_on_sigterm

if TYPE_CHECKING:
    from ..catalog import ResourceSpec
    from ..fhir.search import WindowSync
    from ..fhir.window import Window
    from ..warehouse.landing import LandingOptions, LandingResult
    from ..warehouse.protocol import Provenance, Warehouse
    from .progress import Bars


@dataclass(frozen=True, slots=True)
class SyncRun:
    """What every type's sync in one command shares."""

    warehouse: Warehouse
    window_sync: WindowSync
    target: Target
    provenance: Provenance
    options: LandingOptions
    bars: Bars


@dataclass(frozen=True, slots=True)
class Target:
    """What ``build_window_sync``/``build_sync_queries`` read of the Dagster resource."""

    base_url: str
    client_id: str | None
    server_profile: str | None
    patient_group: str | None
    requests_per_s: float | None
    workers: int | None
    rate_limit_postgres: str | None = None
    page_size: int = 500


def sync(
    types: list[str] = typer.Option(
        [], "--type", help="resource type (repeat or comma-separate; default FHIR_RESOURCE_TYPES)"
    ),
    since: str = typer.Option(
        None, "--since", help="from INSTANT (default: the newest lastUpdated already landed)"
    ),
    until: str = typer.Option(None, "--until", help="up to INSTANT, exclusive (default: now)"),
) -> None:
    """Sync resource types from FHIR_BASE_URL into the configured warehouse, in this process.

    Each type is searched by _lastUpdated in [--since, --until) and MERGEd like the raw assets
    do; run it again and it continues from the newest resource it holds of this server.
    """
    from ..catalog import select
    from ..fhir import check_read_access, connect
    from ..fhir.client import redact
    from ..settings import Settings
    from ..sync import build_window_sync
    from ..warehouse.landing import LandingOptions
    from ..warehouse.protocol import Provenance
    from ..warehouse.settings import open_warehouse
    from .probe import checked_server
    from .progress import bars

    interrupt_on_sigterm()
    settings = Settings.from_environ(environ())
    names = ",".join(types) or settings.sync.resource_types
    specs = select(names)
    resource_types = tuple(spec.resource_type for spec in specs)
    server = checked_server(settings.fhir, resource_types)
    check_read_access(server, resource_types)  # missing scopes fail before any data is pulled
    end = _instant(until, "--until") if until else datetime.now(UTC)
    start = _instant(since, "--since") if since else None
    started = datetime.now(UTC)
    provenance = Provenance(redact(server.base_url), f"cli-sync-{uuid.uuid4()}", started)
    options = LandingOptions(validation=settings.sync.validation, history=settings.sync.history,
                             max_line_bytes=settings.sync.max_line_bytes)  # fmt: skip
    fhir = settings.fhir
    target = Target(server.base_url, fhir.client_id, fhir.server_profile, fhir.patient_group,
                    fhir.requests_per_s, fhir.workers, fhir.rate_limit_postgres)  # fmt: skip
    typer.echo(f"{'type':26} {'window':>52} {'seen':>8} {'landed':>8} {'updated':>8} "
               f"{'unchanged':>9} {'quarantined':>11}")  # fmt: skip
    with (
        connect(server) as client,
        open_warehouse(settings.warehouse) as warehouse,
        bars("resources") as shown,
    ):
        window_sync = build_window_sync(client, target)  # type: ignore[arg-type]
        run = SyncRun(warehouse, window_sync, target, provenance, options, shown)
        for spec in specs:
            _sync_type(run, spec, (start, end))


def _sync_type(
    run: SyncRun, spec: ResourceSpec, bounds: tuple[datetime | None, datetime]
) -> LandingResult | None:
    from ..fhir.window import EPOCH, Window
    from ..sync import build_sync_queries
    from ..warehouse.inputs import resource_entries
    from ..warehouse.landing import land

    server = run.provenance.source_server
    start = bounds[0] or _newest(run.warehouse, spec.table, server, bounds[1]) or EPOCH
    if start >= bounds[1]:
        typer.echo(f"{spec.resource_type:26} nothing to sync: --since is not before --until")
        return None
    window = Window(start, bounds[1])
    queries = build_sync_queries(run.window_sync, run.target, spec, [window])  # type: ignore[arg-type]
    task = run.bars.add(spec.resource_type, _count(run, spec.resource_type, window))

    def entries() -> Iterator[Any]:
        for number, page in enumerate(run.window_sync.pages(queries), 1):
            source = f"{server}/{spec.resource_type} search page {number}"
            yield from resource_entries(source, page)
            run.bars.advance(task, len(page), len(page))

    outside = run.window_sync.stats["outside_window"]
    r = land(run.warehouse, spec.resource_type, entries(), run.provenance, run.options)
    run.bars.finish(task)
    if run.window_sync.stats["outside_window"] > outside:
        typer.echo(
            f"{spec.resource_type:26} warning: "
            f"{run.window_sync.stats['outside_window'] - outside} resource(s) with "
            f"meta.lastUpdated outside {window} (in the future?): landed as the server sent "
            f"them, never used as the sync cursor",
            err=True,
        )
    typer.echo(f"{r.resource_type:26} {window!s:>52} {r.seen:8d} {r.landed:8d} {r.updated:8d} "
               f"{r.unchanged:9d} {r.quarantined:11d}")  # fmt: skip
    return r


def _count(run: SyncRun, resource_type: str, window: Window) -> int | None:
    """The server's count for the window, for the bar's ETA (only when a bar is shown)."""
    from ..fhir.errors import FhirError

    if not run.bars.shown:
        return None
    try:
        total = run.window_sync.client.get(
            resource_type, [("_summary", "count"), *window.params()]
        ).get("total")
    except FhirError:
        return None
    return total if isinstance(total, int) else None


def _newest(warehouse: Warehouse, table: str, server: str, until: datetime) -> datetime | None:
    """The newest ``last_updated`` before ``until`` landed from ``server`` (``None``: no table
    or no rows).

    The next search starts there (``ge``), so a resource updated in the same millisecond as the
    newest one is not missed; the one already landed comes back as ``unchanged``. Only what a
    window asked for counts: a row dated after ``until`` (a server's clock or data in the
    future, 9999-12-31) is landed but never moves the cursor past the window's end.
    """
    from ..warehouse.layout import RAW_SCHEMA
    from ..warehouse.protocol import iso
    from ..warehouse.sql import qualified

    literal = warehouse.dialect.literal
    exists = (
        "SELECT COUNT(*) FROM information_schema.tables WHERE "  # noqa: S608 - literals
        f"LOWER(table_schema) = {literal(RAW_SCHEMA)} AND LOWER(table_name) = {literal(table)}"
    )
    if not warehouse.fetch(exists)[0][0]:  # never landed: sync everything
        return None
    [(newest,)] = warehouse.fetch(
        f"SELECT MAX(last_updated) FROM {qualified(table)} "  # noqa: S608 - catalog name, literal
        f"WHERE source_server = {literal(server)} "
        f"AND last_updated < {warehouse.dialect.to_timestamp(literal(iso(until)))}"
    )
    if isinstance(newest, str):  # a driver that returns timestamps as text
        newest = datetime.fromisoformat(newest)
    if not isinstance(newest, datetime):
        return None
    return newest if newest.tzinfo else newest.replace(tzinfo=UTC)


def _instant(text: str, option: str) -> datetime:
    from .errors import CliError

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"{option} {text!r} is not an ISO 8601 date or instant",
                       "e.g. 2026-01-31 or 2026-01-31T12:00:00Z") from exc  # fmt: skip
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    """Add ``sync`` to ``app``."""
    app.command("sync")(sync)
