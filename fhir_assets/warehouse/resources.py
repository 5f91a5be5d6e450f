"""The Dagster resources of the landing warehouse: DuckDB or Snowflake, one per deployment.

Both open a ``Warehouse`` (``open_warehouse``) that raw landing, asset checks, view assets and
write-back all use, so ``FHIR_WAREHOUSE`` switches every one of them at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from .duckdb import DEFAULT_MEMORY_LIMIT, DuckDBWarehouse
from .duckdb_file import connect_waiting
from .errors import WarehouseLockedError
from .snowflake import SnowflakeSettings, SnowflakeWarehouse, open_snowflake


class DuckDBWarehouseResource(DuckDBResource):
    """dagster-duckdb's ``DuckDBResource`` that also opens a landing warehouse on its file.

    Attributes:
        memory_limit: DuckDB memory limit while landing (bounds peak RSS; see
            ``DuckDBWarehouse``); empty for DuckDB's default (80% of RAM).
        lock_wait_s: how long to wait for another process holding the file, saying so, before
            failing the step with ``WarehouseLockedError``'s sentence (``FHIR_DUCKDB_LOCK_WAIT_S``).
    """

    memory_limit: str = DEFAULT_MEMORY_LIMIT
    lock_wait_s: float = 120.0

    @contextmanager
    def open_warehouse(self, *, landing: bool = True) -> Iterator[DuckDBWarehouse]:
        """A ``DuckDBWarehouse`` on a fresh connection, closed afterwards.

        Args:
            landing: apply ``memory_limit``; views and checks pass False (a view over large
                JSON needs more, and the limit is per database, so it is reset).
        """
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        # Not get_connection(): it retries a held file ~100 s in silence, then raises raw.
        config = {"custom_user_agent": "dagster", **self.connection_config}
        # the wait is said in the step's log (get_dagster_logger routes to it inside a step)
        warn = dg.get_dagster_logger().warning
        try:
            connection = connect_waiting(self.database, config, self.lock_wait_s, warn=warn)
        except WarehouseLockedError as exc:  # the step fails with the one sentence, no traceback
            raise dg.Failure(str(exc)) from exc
        with connection:
            if not landing:
                connection.execute("RESET memory_limit")
            yield DuckDBWarehouse(connection, (self.memory_limit if landing else "") or None)


class SnowflakeWarehouseResource(dg.ConfigurableResource):  # type: ignore[misc]
    """The Snowflake warehouse (``SnowflakeSettings`` as Dagster config; secrets as ``EnvVar``).

    It connects with snowflake-connector-python directly rather than through dagster-snowflake's
    resource, which imports Snowpark (seconds) and knows no ``host``/``port``/``protocol``.
    """

    account: str = Field(default="", description="SNOWFLAKE_ACCOUNT")
    user: str = Field(default="", description="SNOWFLAKE_USER")
    password: str | None = Field(default=None, repr=False, description="SNOWFLAKE_PASSWORD")
    private_key_path: str | None = Field(default=None, description="SNOWFLAKE_PRIVATE_KEY_PATH")
    private_key_password: str | None = Field(
        default=None, repr=False, description="SNOWFLAKE_PRIVATE_KEY_PASSWORD"
    )
    role: str | None = Field(default=None, description="SNOWFLAKE_ROLE")
    warehouse: str | None = Field(default=None, description="SNOWFLAKE_WAREHOUSE")
    database: str = Field(default="", description="SNOWFLAKE_DATABASE")
    schema_: str | None = Field(default=None, alias="schema", description="SNOWFLAKE_SCHEMA")
    host: str | None = Field(default=None, description="SNOWFLAKE_HOST (an emulator, a proxy)")
    port: int | None = Field(default=None, description="SNOWFLAKE_PORT")
    protocol: str | None = Field(default=None, description="SNOWFLAKE_PROTOCOL: https or http")

    def settings(self) -> SnowflakeSettings:
        """The plain connection settings this resource describes."""
        return SnowflakeSettings(
            account=self.account,
            user=self.user,
            password=self.password,
            private_key_path=self.private_key_path,
            private_key_password=self.private_key_password,
            role=self.role,
            warehouse=self.warehouse,
            database=self.database,
            schema=self.schema_,
            host=self.host,
            port=self.port,
            protocol=self.protocol,
        )

    @contextmanager
    def open_warehouse(self, *, landing: bool = True) -> Iterator[SnowflakeWarehouse]:
        """A ``SnowflakeWarehouse`` on a new connection, closed afterwards (``landing`` is
        DuckDB's memory-limit switch; Snowflake sizes its own compute)."""
        with open_snowflake(self.settings()) as warehouse:
            yield warehouse


def snowflake_config(settings: SnowflakeSettings, secrets: dict[str, Any]) -> dict[str, Any]:
    """``SnowflakeWarehouseResource`` keyword arguments from settings; ``secrets`` replaces
    secret values (e.g. by ``dg.EnvVar``)."""
    return {
        "account": settings.account,
        "user": settings.user,
        "password": settings.password,
        "private_key_path": settings.private_key_path,
        "private_key_password": settings.private_key_password,
        "role": settings.role,
        "warehouse": settings.warehouse,
        "database": settings.database,
        "schema": settings.schema,
        "host": settings.host,
        "port": settings.port,
        "protocol": settings.protocol,
        **secrets,
    }
