"""``fhir-assets doctor``: check the configuration step by step and print a pass/fail table.

The steps follow a sync's own order (server, SMART discovery, key, token, scopes, warehouse), so
the first failure is the one to fix; a step that needs a failed one is skipped, not failed again.
No Dagster here; the token is obtained and never printed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from .common import environ
from .errors import CliError, explain

if TYPE_CHECKING:
    from ..settings import Settings

PASS, FAIL, SKIP = "pass", "FAIL", "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the table: a step, its status, what was found, and the fix on failure."""

    name: str
    status: str
    detail: str
    fix: str = ""


def doctor() -> None:
    """Check FHIR_* / SNOWFLAKE_* settings: server, SMART, key, token, scopes, warehouse.

    Exits 1 when a check fails.
    """
    checks = list(run_checks(environ()))
    width = max(len(c.name) for c in checks)
    for check in checks:
        typer.echo(f"{check.status:4}  {check.name:{width}}  {check.detail}")
        if check.fix:
            typer.echo(f"{'':4}  {'':{width}}  fix: {check.fix}")
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
    from ..fhir import FhirError, discover, require_read, token_source
    from .probe import capability_statement, check_private_key

    fhir = settings.fhir
    try:
        statement = capability_statement(fhir.base_url)
    except CliError as exc:
        yield Check("FHIR server", FAIL, exc.what, exc.fix)
        return
    yield _statement_check(fhir.base_url, statement)
    server = fhir.server(types)
    if server.method() == "none":
        yield Check("SMART / token", SKIP, "no client configured (FHIR_CLIENT_ID unset)")
        return
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
        return Check("warehouse", FAIL, f"{warehouse.kind} {where}: {what}", fix)
    return Check("warehouse", PASS, f"{warehouse.kind} {where}: reachable and writable")


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""
    app.command("doctor")(doctor)
