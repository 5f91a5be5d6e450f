"""``fhir-assets everything``, ``validate`` and ``extract``: the FHIR operations, without Dagster.

The same library code as the operation assets (``cohort.py``, ``conformance.py``,
``extraction.py``), against FHIR_BASE_URL and the configured warehouse (docs/operations.md).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from .common import environ, interrupt_on_sigterm

ROW = "{:26} {:>9} {:>9} {:>9} {:>9} {:>11}"


@contextmanager
def _server(types: tuple[str, ...], scopes: str | None = None) -> Iterator[tuple[Any, Any, Any]]:
    """(settings, client with the server profile applied, workers). Rows name the server as
    ``redact(settings.fhir.base_url)``, like the raw assets' and ``sync``'s rows."""
    from ..fhir import connect
    from ..settings import Settings
    from ..sync import use_server_profile
    from .probe import checked_server
    from .sync import Target

    settings = Settings.from_environ(environ())
    server = checked_server(settings.fhir, types, scopes=settings.fhir.scopes or scopes)
    fhir = settings.fhir
    target = Target(server.base_url, fhir.client_id, fhir.server_profile, fhir.patient_group,
                    fhir.requests_per_s, fhir.workers, fhir.rate_limit_postgres)  # fmt: skip
    with connect(server) as client:
        profile = use_server_profile(client, target)  # type: ignore[arg-type]
        yield settings, client, fhir.workers or profile.workers


def _limits(settings: Any) -> Any:
    from ..fhir.operations import OperationLimits

    ops = settings.operations
    return OperationLimits(max_pages=ops.max_pages, deadline_s=ops.deadline_s)


def _table(results: Any) -> None:
    typer.echo(ROW.format("type", "seen", "landed", "updated", "unchanged", "quarantined"))
    for r in results:
        typer.echo(ROW.format(r.resource_type, r.seen, r.landed, r.updated, r.unchanged,
                              r.quarantined))  # fmt: skip


def everything(
    patient: str = typer.Option(None, "--patient", help="patient ids, comma-separated"),
    group: str = typer.Option(None, "--group", help="a Group id: its members are the cohort"),
    since: str = typer.Option(None, "--since", help="_since INSTANT, passed to the server"),
    types: str = typer.Option(None, "--type", help="resource types, comma-separated (_type)"),
) -> None:
    """Patient/$everything for a cohort (--patient or --group), landed into fhir_raw.<type>."""
    from ..cohort import (
        Cohort,
        everything_metadata,
        fetch_everything,
        land_everything,
        parse_types,
    )
    from ..fhir.client import redact
    from ..warehouse.landing import LandingOptions
    from ..warehouse.protocol import Provenance
    from ..warehouse.settings import open_warehouse
    from .errors import CliError

    if bool(patient) == bool(group):
        raise CliError("give --patient ID[,ID...] or --group GROUP_ID (one of them)")
    interrupt_on_sigterm()
    cohort = Cohort.from_key(f"Group/{group}" if group else f"Patient/{patient}")
    wanted = parse_types(types)
    # every type of the record unless --type narrows it (FHIR_SCOPES, when set, wins)
    with _server(("Patient", *wanted), None if wanted else "system/*.read") as (
        settings,
        client,
        workers,
    ):
        ids = cohort.patients(client)
        provenance = Provenance(redact(settings.fhir.base_url), f"cli-everything-{uuid.uuid4()}",
                                datetime.now(UTC))  # fmt: skip
        options = LandingOptions(validation=settings.sync.validation, history=settings.sync.history)
        with tempfile.TemporaryDirectory(prefix="fhir-everything-") as folder:
            fetched = fetch_everything(client, ids, Path(folder), since=since, types=wanted,
                                       limits=_limits(settings), workers=workers)  # fmt: skip
            with open_warehouse(settings.warehouse) as warehouse:
                results = land_everything(warehouse, fetched, provenance, options)
    summary = everything_metadata(fetched, results)
    typer.echo(f"{summary['patients']} patients, {summary['resources']} resources")
    _table(results)
    if summary["other_types_skipped"]:
        typer.echo(f"{summary['other_types_skipped']} resources of types not in --type: not landed")


def validate(
    resource_type: str = typer.Option(..., "--type", help="the raw table's resource type"),
    sample: int = typer.Option(
        None, "--sample", help="resources sent (default FHIR_VALIDATE_SAMPLE)"
    ),
    profile: str = typer.Option(
        None, "--profile", help="profile URL (default FHIR_VALIDATE_PROFILE)"
    ),
) -> None:
    """$validate the newest landed resources of a type on the server; exit 1 on any error."""
    from ..conformance import sample as newest
    from ..conformance import validate_sample
    from ..fhir.client import redact
    from ..warehouse.settings import open_warehouse

    with _server((resource_type,)) as (settings, client, _):
        size = settings.operations.validate_sample if sample is None else sample
        with open_warehouse(settings.warehouse, landing=False) as warehouse:
            resources = list(
                newest(warehouse, resource_type.lower(), redact(settings.fhir.base_url), size)
            )
        summary = validate_sample(client, resource_type, resources,
                                  profile or settings.operations.validate_profile)  # fmt: skip
    for name, value in summary.metadata().items():
        typer.echo(f"{name}: {value}")
    if summary.errors:
        raise typer.Exit(1)


def extract(
    since: str = typer.Option(None, "--since", help="re-extract responses updated since INSTANT"),
) -> None:
    """QuestionnaireResponse/$extract for new or changed landed responses, landed by type."""
    from ..extraction import EXTRACT_SOURCE, extract_all, extraction_metadata, land_extraction
    from ..extraction import pending as to_extract
    from ..fhir.client import redact
    from ..warehouse.landing import LandingOptions
    from ..warehouse.protocol import Provenance
    from ..warehouse.settings import open_warehouse
    from .sync import _instant

    start = _instant(since, "--since") if since else None
    with _server(("QuestionnaireResponse",)) as (settings, client, _):
        server = redact(settings.fhir.base_url)
        provenance = Provenance(server + EXTRACT_SOURCE, f"cli-extract-{uuid.uuid4()}",
                                datetime.now(UTC))  # fmt: skip
        options = LandingOptions(validation=settings.sync.validation, history=settings.sync.history)
        with (
            tempfile.TemporaryDirectory(prefix="fhir-extract-") as folder,
            open_warehouse(settings.warehouse) as warehouse,
        ):
            responses = to_extract(warehouse, server, start)
            run = extract_all(client, responses, Path(folder), _limits(settings))
            results = land_extraction(warehouse, run, responses, provenance, options)
    summary = extraction_metadata(run, results)
    done, failed = summary["extracted_responses"], summary["failed_responses"]
    typer.echo(f"{done} responses extracted, {failed} failed, {run.left} left for the next run; "
               f"{summary['tombstoned']} earlier results tombstoned "
               f"({summary['deleted_responses']} responses deleted on the server)")  # fmt: skip
    _table(results)
    for response_id, outcome in sorted(run.failed.items()):
        typer.echo(f"QuestionnaireResponse/{response_id}: not extracted: {outcome} "
                   "(earlier results kept)", err=True)  # fmt: skip
    if summary["stale_left_for_next_run"]:
        typer.echo("more results of deleted responses to tombstone: run extract again", err=True)


def register(app: typer.Typer) -> None:
    """Add the operation commands to ``app``."""
    app.command("everything")(everything)
    app.command("validate")(validate)
    app.command("extract")(extract)
