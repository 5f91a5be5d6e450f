"""deploy/snowflake/bootstrap.sql stays runnable: the emulator runs every statement not marked
``emulator: skip``, and refuses every marked one (so no marker hides a statement it could run)."""

from __future__ import annotations

import pytest
from snowflake.connector.errors import ProgrammingError

from fhir_assets.warehouse.snowflake import connect

from ..snowflake_emulator import apply_bootstrap, bootstrap_statements, emulator_settings


def test_bootstrap_creates_the_schemas_and_stage_on_the_emulator() -> None:
    with emulator_settings(database="FHIR_ASSETS") as settings:
        assert apply_bootstrap(settings) == 6
        connection = connect(settings)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT schema_name FROM FHIR_ASSETS.information_schema.schemata")
                schemas = {row[0].upper() for row in cursor.fetchall()}
                skipped = [s for s, runs in bootstrap_statements() if not runs]
                for statement in skipped:
                    with pytest.raises(ProgrammingError):
                        cursor.execute(statement)
        finally:
            connection.close()
    assert {"FHIR_RAW", "FHIR", "FHIR_AUDIT", "FHIR_WRITEBACK"} <= schemas
    assert len(skipped) == 11  # role, warehouse, user and grants: checked on a real account


def test_bootstrap_covers_roles_grants_and_a_key_pair_service_user() -> None:
    text = " ".join(statement for statement, _ in bootstrap_statements())
    assert "CREATE ROLE IF NOT EXISTS FHIR_LOADER" in text
    assert "TYPE = SERVICE" in text and "RSA_PUBLIC_KEY" in text and "PASSWORD" not in text
    assert "CREATE STAGE IF NOT EXISTS FHIR_ASSETS.FHIR_RAW.LANDING" in text
    assert "GRANT ALL" not in text and "OWNERSHIP" not in text
