"""Failures as a user reads them: what failed, the URL or file involved, the likely fix.

Every command runs inside :class:`CliGroup`, which turns an exception that escapes a command
into one or two lines on stderr and exit code 1; ``fhir-assets --debug ...`` re-raises it with
its traceback instead. The FHIR library's errors, ``requests``' connection errors and file
errors are told apart here (unreachable host vs. wrong path vs. not a FHIR server vs. auth), so
a command need not catch them itself. Messages carry URLs without query strings and file
names, never a token, secret or key text (the library's messages already hold none).
"""

from __future__ import annotations

from typing import Any, ClassVar

import click
import typer
from typer.core import TyperGroup

RERUN = "rerun with --debug for the traceback"


class CliError(Exception):
    """A failure with the fix already known: ``what`` failed, and what to do about it."""

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix


def explain(exc: BaseException) -> tuple[str, str]:
    """``(what failed, the likely fix)`` for an exception that escaped a command."""
    if isinstance(exc, CliError):
        return exc.what, exc.fix
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("fhir_assets.fhir"):
        return _explain_fhir(exc, name)
    if module.startswith(("requests", "urllib3")):
        return f"HTTP request failed: {exc}", "check FHIR_BASE_URL and that the server runs"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename}", "check the path"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}", "check the file's owner and mode"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or name}: {exc.filename}", ""
    if module.startswith("fhir_assets.warehouse"):
        return _first_line(exc), ""  # the warehouse layer's messages say what to do themselves
    if module.startswith(("duckdb", "_duckdb", "snowflake")):
        return f"warehouse error ({name}): {_first_line(exc)}", (
            "check FHIR_WAREHOUSE and FHIR_DUCKDB_PATH / SNOWFLAKE_*, and that no other "
            "process holds the DuckDB file; `fhir-assets doctor` checks the warehouse"
        )
    return f"{name}: {_first_line(exc)}", RERUN


def _explain_fhir(exc: BaseException, name: str) -> tuple[str, str]:
    status: Any = getattr(exc, "status", None)
    url = getattr(exc, "url", "")
    message = _first_line(exc)
    if name == "AuthError" or status in (401, 403):
        return f"authorization failed: {message}", (
            "check FHIR_CLIENT_ID, the key or secret registered for it, and FHIR_SCOPES; "
            "`fhir-assets auth check` shows the token's scopes"
        )
    if name == "ResponseFormatError":
        return f"not a FHIR answer: {message}", "check that FHIR_BASE_URL is the FHIR base URL"
    if name == "TransientRequestError" and status is None:
        return f"cannot reach {url or 'the server'}: {message}", (
            "check the host and port of FHIR_BASE_URL and that the server runs"
        )
    if status == 404:
        return f"not found (HTTP 404): {url or message}", (
            "check the path of FHIR_BASE_URL (its /metadata must be a CapabilityStatement)"
        )
    return message, ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def report(exc: BaseException) -> None:
    """Print ``exc`` as the one or two lines a user reads."""
    what, fix = explain(exc)
    typer.echo(f"error: {what}", err=True)
    if fix:
        typer.echo(f"  fix: {fix}", err=True)


class CliGroup(TyperGroup):
    """The top-level command group: failures become :func:`report` and exit code 1.

    Commands are imported only when run (``fhir-assets --help`` lists them from ``lazy``): each
    module costs milliseconds, the views compiler alone a fifth of a command's start-up. A
    ``lazy`` entry names a module with an ``app`` (a sub-app, added as a group) or a
    ``register(app)`` (its commands are added), and the short help it lists;
    ``fhir_assets_tests/cli/test_lazy.py`` keeps that equal to the command's own.
    """

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "land": (f"{__package__}.data", "Land a folder of .ndjson/.ndjson.gz files into the "
                 "configured warehouse."),
        "export": (f"{__package__}.data", "Bulk Data $export into --out (NDJSON per type), "
                   "resumable after a crash or Ctrl-C."),
        "sync": (f"{__package__}.sync", "Sync resource types from FHIR_BASE_URL into the "
                 "configured warehouse, in this process."),
        "everything": (f"{__package__}.operations", "Patient/$everything for a cohort "
                       "(--patient or --group), landed into fhir_raw.<type>."),
        "validate": (f"{__package__}.operations", "$validate the newest landed resources of a "
                     "type on the server; exit 1 on any error."),
        "extract": (f"{__package__}.operations", "QuestionnaireResponse/$extract for new or "
                    "changed landed responses, landed by type."),
        "doctor": (f"{__package__}.doctor", "Check FHIR_* / SNOWFLAKE_* settings: server, SMART, "
                   "key, token, scopes, warehouse."),
        "views": ("fhir_assets.views.cli", "SQL on FHIR v2 ViewDefinitions."),
        "sandbox": (f"{__package__}.demo", "Run a local FHIR R4 server with synthetic patients "
                    "and SMART auth, until Ctrl-C."),
        "demo": (f"{__package__}.demo", "Sandbox -> every raw asset -> the warehouse, then "
                 "print row counts per table."),
        "writeback": (f"{__package__}.demo", "Sandbox -> land Patient/Observation -> per-patient "
                      "score -> write back (twice)."),
        "ui": (f"{__package__}.demo", "Start the sandbox and the Dagster UI (dg dev) wired "
               "to it, until Ctrl-C."),
        "pools": (f"{__package__}.pools", "Show each Dagster pool the definitions use, its "
                  "default limit from the server profile and its limit in the Dagster instance "
                  "at DAGSTER_HOME; --apply sets the defaults."),
    }  # fmt: skip

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            self.load(self.lazy[name][0], name)
        return super().get_command(ctx, name)

    def load(self, module_name: str, name: str) -> None:
        """Add the commands of ``module_name``: its sub-app as ``name``, or all it registers."""
        import importlib

        module = importlib.import_module(module_name)
        if hasattr(module, "app"):
            self.add_command(typer.main.get_group(module.app), name)  # a group even of one command
            return
        holder = typer.Typer(rich_markup_mode=None)  # click's plain help, as the app's
        module.register(holder)
        for command_name, command in typer.main.get_group(holder).commands.items():
            self.add_command(command, command_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the lazy sub-apps' help taken from ``lazy``."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][1]))
            elif (command := self.get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # `fhir-assets ... | head`: the reader left; nothing to say
            raise typer.Exit(1) from None
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            report(exc)
            raise typer.Exit(1) from None
