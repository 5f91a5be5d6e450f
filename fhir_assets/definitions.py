"""The Dagster Definitions: the only module that reads the deployment environment.

Environment -> :class:`fhir_assets.settings.Settings` (every variable is listed there and in the
README's configuration table) -> :func:`fhir_assets.assets.defs.build_all_defs`. Nothing imports
this module; build ``Settings`` and call ``build_defs`` instead.
"""

from __future__ import annotations

import os

from .assets.defs import build_all_defs
from .settings import Settings

settings = Settings.from_environ(os.environ, secrets_from_env=True)
defs = build_all_defs(settings)
