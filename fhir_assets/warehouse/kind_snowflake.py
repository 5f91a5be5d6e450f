"""Snowflake as a kind (``kinds.py``): imported only in Snowflake mode (the connector and
dagster-snowflake-pandas take seconds to import, and are imported only when used)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from . import sql
from .kinds import WarehouseKind

if TYPE_CHECKING:
    from ..settings import Settings
    from .protocol import Warehouse
    from .settings import WarehouseSettings

SECRETS = ("password", "private_key_password")


def describe(settings: WarehouseSettings) -> str:
    """Where the connection settings come from."""
    return "Snowflake (SNOWFLAKE_*)"


def open_warehouse(settings: WarehouseSettings, landing: bool) -> AbstractContextManager[Warehouse]:
    """A ``SnowflakeWarehouse`` on a new connection (``landing`` changes nothing here)."""
    from .snowflake import open_snowflake

    return open_snowflake(settings.snowflake)


def resources(settings: Settings) -> tuple[Any, Any]:
    """The ``landing`` resource and dagster-snowflake-pandas' IO manager; with
    ``secrets_from_env`` the secrets are ``dg.EnvVar``s (not written into the run config)."""
    import dagster as dg

    from ..settings import env_name
    from .io_managers import snowflake_io_manager
    from .resources import SnowflakeWarehouseResource, snowflake_config
    from .snowflake import SnowflakeSettings

    warehouse = settings.warehouse
    secrets = {
        name: dg.EnvVar(env_name(SnowflakeSettings, name))
        for name in SECRETS
        if settings.secrets_from_env and getattr(warehouse.snowflake, name)
    }
    landing = SnowflakeWarehouseResource(**snowflake_config(warehouse.snowflake, secrets))
    return landing, snowflake_io_manager(warehouse, secrets)


def io_manager(settings: WarehouseSettings, secrets: dict[str, Any] | None) -> Any:
    """dagster-snowflake-pandas' IO manager."""
    from .io_managers import snowflake_io_manager

    return snowflake_io_manager(settings, secrets)


def audit_writer(connection: Any) -> Any:
    """The write-back audit writer on a Snowflake connection."""
    from ..writeback.audit import SnowflakeAuditWriter

    return SnowflakeAuditWriter(connection)


KIND = WarehouseKind(
    name="snowflake",
    dialect=sql.SNOWFLAKE,
    one_writer=False,
    describe=describe,
    open=open_warehouse,
    resources=resources,
    io_manager=io_manager,
    audit_writer=audit_writer,
)
