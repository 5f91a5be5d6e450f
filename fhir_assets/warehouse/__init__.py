"""Landing FHIR resources into warehouse tables (DuckDB by default, Snowflake)."""
