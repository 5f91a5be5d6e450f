"""fhir-assets: FHIR R4 servers landed in Snowflake or DuckDB as Dagster software-defined assets.

Layers (dependencies only point down):

- ``fhir_assets.fhir``: a pure FHIR/SMART client library (requests, authlib, joserfc; no dagster).
- ``fhir_assets.warehouse``: the raw table layout and landing into DuckDB or Snowflake.
- ``fhir_assets.assets``, ``fhir_assets.definitions``: thin Dagster wiring over one catalog.
"""

__version__ = "0.1.0"
