"""The ``fhir-assets`` command line, over the library layers.

The data commands (``land``, ``export``, ``views``, ``auth``, ``keys``) import neither Dagster
nor ``fhir_assets.definitions``: they read the same :class:`fhir_assets.settings.Settings` and
call the library directly, so they start in a fraction of a second and a broken Dagster-only
setting (``FHIR_PARTITIONS``, ``FHIR_VIEWS_DIR``) cannot break them. ``demo``, ``writeback`` and
``ui`` start Dagster, inside the command.
"""

from __future__ import annotations

import typer

from ..views.cli import app as views_app
from . import data, demo
from .auth import auth_app, keys_app

app = typer.Typer(
    help="FHIR R4 servers landed in DuckDB or Snowflake as Dagster assets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(auth_app, name="auth")
app.add_typer(views_app, name="views")
data.register(app)
demo.register(app)

__all__ = ["app"]
