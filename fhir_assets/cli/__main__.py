"""``python -m fhir_assets.cli``."""

from . import app

app()
