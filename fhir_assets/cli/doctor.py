"""``fhir-assets doctor``: check the configuration step by step and print a pass/fail table.

The steps follow a sync's own order (server, SMART discovery, key, token, scopes, warehouse), so
the first failure is the one to fix; a step that needs a failed one is skipped, not failed again.
The last FHIR step, ``search``, reads one result through the client every path builds (the
factory: the vendor profile's headers and rate limit, the token, the retry policy).
No Dagster here; the token is obtained and never printed. After the server check, ``server
types`` lists the resource types the CapabilityStatement offers and prints the
``FHIR_RESOURCE_TYPES`` line that selects them all (``--write-types FILE`` writes that line into
an env file). The statement is advisory: servers export types it omits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .common import environ
from .errors import CliError, explain

if TYPE_CHECKING:
    from ..fhir.settings import ServerSettings
    from ..settings import Settings

PASS, FAIL, SKIP = "pass", "FAIL", "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the table: a step, its status, what was found, and the fix on failure."""

    name: str
    status: str
    detail: str
    fix: str = ""


def doctor(
    write_types: Path = typer.Option(
        None,
        "--write-types",
        help="write the FHIR_RESOURCE_TYPES line of the types the server offers into FILE "
        "(an env file; its other lines are kept)",
    ),
) -> None:
    """Check FHIR_* / SNOWFLAKE_* settings: server, SMART, key, token, scopes, warehouse.

    Also lists the resource types the server's CapabilityStatement offers, as a
    FHIR_RESOURCE_TYPES line (--write-types FILE writes it into an env file).

    Exits 1 when a check fails.
    """
    checks = list(run_checks(environ()))
    width = max(len(c.name) for c in checks)
    for check in checks:
        typer.echo(f"{check.status:4}  {check.name:{width}}  {check.detail}")
        if check.fix:
            typer.echo(f"{'':4}  {'':{width}}  fix: {check.fix}")
    offered = next((c.detail for c in checks if c.name == TYPES and c.status == PASS), "")
    if write_types is not None:
        if not offered:
            typer.echo("no server types to write: see the server types check", err=True)
            raise typer.Exit(1)
        write_line(write_types, offered.rsplit(": ", 1)[-1])
        typer.echo(f"wrote the FHIR_RESOURCE_TYPES line into {write_types}")
    failed = [c.name for c in checks if c.status == FAIL]
    if failed:
        typer.echo(f"{len(failed)} check(s) failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


def run_checks(env: Mapping[str, str]) -> Iterator[Check]:
    """Every check, in order, for the settings in ``env``."""
    from ..fhir.errors import ConfigurationError
    from ..settings import Settings

    try:
        settings = Settings.from_environ(env)
        from ..catalog import select

        types = tuple(spec.resource_type for spec in select(settings.sync.resource_types))
    except (ConfigurationError, ValueError) as exc:
        yield Check("configuration", FAIL, str(exc), "fix the variable named")
        return
    yield Check("configuration", PASS, f"{len(types)} resource types selected")
    yield from _fhir_checks(settings, types)
    yield _warehouse_check(settings)


def _fhir_checks(settings: Settings, types: tuple[str, ...]) -> Iterator[Check]:
    from .probe import capability_statement

    fhir = settings.fhir
    try:
        statement = capability_statement(fhir.base_url)
    except CliError as exc:
        yield Check("FHIR server", FAIL, exc.what, exc.fix)
        return
    yield _statement_check(fhir.base_url, statement)
    yield types_check(statement)
    server = fhir.server(types)
    if server.method() == "none":
        yield Check("SMART / token", SKIP, "no client configured (FHIR_CLIENT_ID unset)")
    else:
        token_checks = list(_token_checks(settings, server, types))
        yield from token_checks
        if any(c.status == FAIL for c in token_checks):
            return
    yield search_check(server, types)


def _token_checks(
    settings: Settings, server: ServerSettings, types: tuple[str, ...]
) -> Iterator[Check]:
    from ..fhir import FhirError, discover, require_read, token_source
    from .probe import check_private_key

    fhir = settings.fhir
    try:
        config = discover(server.base_url, timeout=server.timeout_s)
        yield Check("SMART configuration", PASS, f"token endpoint {config.token_endpoint}")
    except FhirError as exc:
        status = SKIP if server.token_url else FAIL
        yield Check("SMART configuration", status, str(exc), "" if server.token_url else
                    "set FHIR_TOKEN_URL, or check FHIR_BASE_URL")  # fmt: skip
    try:
        check_private_key(None if fhir.private_key else fhir.private_key_path)
        token = token_source(server).token()  # type: ignore[union-attr]
    except (CliError, FhirError) as exc:
        what, fix = explain(exc)
        yield Check("token", FAIL, what, fix)
        return
    yield Check("token", PASS, f"{server.method()} token, scopes: {token.scope or '(none)'}")
    try:
        require_read(token.scope, types)
    except FhirError as exc:
        yield Check("scopes", FAIL, str(exc).split(". ")[0],
                    "grant the scope to the client, or narrow FHIR_RESOURCE_TYPES")  # fmt: skip
        return
    yield Check("scopes", PASS, f"cover reading the {len(types)} selected types")


SEARCH = "search"


def search_check(server: ServerSettings, types: tuple[str, ...]) -> Check:
    """One page of one result of the first selected type, through the client every path builds
    (:func:`~fhir_assets.fhir.build_client`): the vendor profile's headers and rate limit, the
    token, the retry policy and the limits of a sync."""
    from ..fhir import FhirError, build_client

    if not types:
        return Check(SEARCH, SKIP, "no resource type selected")
    try:
        with build_client(server) as client:
            page = next(client.search_pages(types[0], {"_count": "1"}))
            profile = client.profile.name if client.profile else "generic"
    except FhirError as exc:
        what, fix = explain(exc)
        return Check(SEARCH, FAIL, what, fix or "check the server's logs for this search")
    found = "no match" if not page.resources else "a searchset Bundle"
    return Check(SEARCH, PASS, f"{types[0]}?_count=1 answered {found} ({profile} profile)")


def _statement_check(base_url: str, statement: dict[str, object] | None) -> Check:
    if statement is None:
        return Check("FHIR server", PASS, f"{base_url} (its /metadata needs a token)")
    version = str(statement.get("fhirVersion", "?"))
    software = statement.get("software")
    name = software.get("name", "") if isinstance(software, dict) else ""
    detail = f"{base_url}: CapabilityStatement, FHIR {version} {name}".rstrip()
    if not version.startswith("4."):
        return Check("FHIR server", FAIL, detail, "fhir-assets reads FHIR R4 (4.0.x) servers")
    return Check("FHIR server", PASS, detail)


TYPES = "server types"


def types_check(statement: Mapping[str, object] | None) -> Check:
    """The R4/R4B resource types the CapabilityStatement lists, as a ``FHIR_RESOURCE_TYPES``
    line. Names that are no R4/R4B type are counted, never printed as they came."""
    from ..fhir.bulk import server_types
    from ..fhir.names import is_resource_type

    listed = server_types(statement or {})
    offered = sorted(t for t in listed if is_resource_type(t))
    if not offered:
        return Check(TYPES, SKIP, "the CapabilityStatement lists no resource types")
    other = len(listed) - len(offered)
    note = f" ({other} other names ignored)" if other else ""
    return Check(TYPES, PASS, f"{len(offered)} offered{note}: "
                 f"FHIR_RESOURCE_TYPES={','.join(offered)}")  # fmt: skip


def write_line(path: Path, line: str) -> None:
    """Put ``line`` (``NAME=value``) into the env file ``path``, replacing a line of that name."""
    name = line.split("=", 1)[0] + "="
    kept = path.read_text().splitlines() if path.is_file() else []
    lines = [old for old in kept if not old.startswith(name)] + [line]
    path.write_text("\n".join(lines) + "\n")


def _warehouse_check(settings: Settings) -> Check:
    from ..warehouse.kinds import warehouse_kind
    from ..warehouse.settings import open_warehouse

    warehouse = settings.warehouse
    where = warehouse_kind(warehouse.kind).describe(warehouse)
    try:
        with open_warehouse(warehouse, landing=False) as opened:
            # A table created and dropped where the raw tables live proves write access.
            opened.fetch("CREATE SCHEMA IF NOT EXISTS fhir_raw")
            opened.fetch("CREATE TABLE IF NOT EXISTS fhir_raw.fhir_assets_doctor (checked INT)")
            opened.fetch("DROP TABLE fhir_raw.fhir_assets_doctor")
    except Exception as exc:
        what, fix = explain(exc)
        fix = fix or "FHIR_DUCKDB_PATH must be a file in a folder this user can create and write"
        return Check("warehouse", FAIL, f"{where}: {what}", fix)
    return Check("warehouse", PASS, f"{where}: reachable and writable")


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""
    app.command("doctor")(doctor)
