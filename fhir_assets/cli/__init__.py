"""The ``fhir-assets`` command line, over the library layers.

The data commands (``land``, ``export``, ``sync``, ``doctor``, ``views``, ``auth``, ``keys``)
import neither Dagster nor ``fhir_assets.definitions``: they read the same
:class:`fhir_assets.settings.Settings` and call the library directly, so they start in a fraction
of a second and a broken Dagster-only setting (``FHIR_PARTITIONS``, ``FHIR_VIEWS_DIR``) cannot
break them. ``demo``, ``writeback``, ``ui`` and ``pools`` start Dagster, inside the command. A
failure is printed as one or two lines (:mod:`.errors`); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import typer

from .auth import auth_app, keys_app
from .errors import CliGroup

app = typer.Typer(
    cls=CliGroup,
    help="FHIR R4 servers landed in DuckDB or Snowflake as Dagster assets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: rich's help rendering imports markdown-it and rich's layout and cost
    # 0.4 s of `fhir-assets --help` here.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"fhir-assets {version('fhir-assets')}")
        raise typer.Exit


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="show the full traceback of a failure"),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """FHIR R4 servers landed in DuckDB or Snowflake as Dagster assets."""
    import logging

    # Library warnings (a refused DELETE, a skipped file) read as one line each, not as
    # "WARNING:module.path:..."; --debug shows every logger's INFO lines too.
    logging.basicConfig(
        level=logging.INFO if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s" if debug else "warning: %(message)s",
    )


app.add_typer(keys_app, name="keys")
app.add_typer(auth_app, name="auth")
# The other commands are imported by CliGroup when run (CliGroup.lazy).

__all__ = ["app"]
