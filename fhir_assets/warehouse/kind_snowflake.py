"""Snowflake as a kind (``kinds.py``): imported only in Snowflake mode (the connector and
dagster-snowflake-pandas take seconds to import, and are imported only when used)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import sql
from .kinds import WarehouseKind
from .layout import RAW_SCHEMA

if TYPE_CHECKING:
    from ..settings import Settings
    from .protocol import Warehouse
    from .settings import WarehouseSettings

SECRETS = ("password", "private_key_password")

# No '$' inside a literal (the emulator reads '$name' as a session variable). Scratch tables are
# transient tables in fhir_raw, like the landing's staging tables: a session that landed nothing
# has no current schema for a temporary table, and the emulator cannot qualify one. Snowflake
# has no HMAC and no binary concatenation: the keyed hash is SHA-256 over the pads' hex.
DIALECT = sql.Dialect(
    "snowflake",
    json_type="VARIANT",
    timestamp_type="TIMESTAMP_TZ",
    views="fhir_assets.views.snowflake_dialect:SnowflakeDialect",
    parse_json="PARSE_JSON({})",
    json_text="{expr}:{path}::VARCHAR",
    json_rows="LATERAL FLATTEN(input => {expr}:{path}) {alias}",
    backslash_escapes=True,
    upper_names=True,
    scratch_table=("CREATE TRANSIENT TABLE", f"{RAW_SCHEMA}."),
    keyed_hash="SHA2('{opad}' || SHA2('{ipad}' || {text}, 256), 256)",
    keyed_hash_scheme="sha2-hex",
    add_days="DATEADD(day, {days}, {expr})",
    add_days_timestamp="DATEADD(day, {days}, {expr})",
    years_before="DATEADD(year, -{years}, CAST('{day}' AS DATE))",
)


def describe(settings: WarehouseSettings) -> str:
    """The endpoint and database (SNOWFLAKE_*; no secrets)."""
    sf = settings.snowflake
    where = sf.host or sf.account or "(no SNOWFLAKE_ACCOUNT)"
    return f"Snowflake {where}:{sf.port or 443} database {sf.database or '(none)'}"


@contextlib.contextmanager
def demo(
    settings: WarehouseSettings, home: Path, echo: Callable[[str], None], chosen: Path | None
) -> Iterator[WarehouseSettings]:
    """Snowflake from SNOWFLAKE_*, or a local fakesnow emulator (the ``dev`` extra) for the
    demo's life when no account or host is set."""
    if settings.snowflake.account or settings.snowflake.host:
        yield settings
        return
    try:
        import fakesnow
    except ImportError as exc:
        raise RuntimeError(
            "no SNOWFLAKE_ACCOUNT set and no emulator: pip install fakesnow"
        ) from exc
    # fakesnow copies Arrow results (a warning per query) and uvicorn logs every request
    warnings.filterwarnings("ignore", category=UserWarning, module="fakesnow")
    with fakesnow.server() as emulator:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
        echo(f"no SNOWFLAKE_ACCOUNT: Snowflake emulator (fakesnow) on port {emulator['port']}")
        endpoint = {k: emulator[k] for k in ("account", "user", "password", "host", "port")}
        snowflake = dataclasses.replace(
            settings.snowflake, database="FHIR_ASSETS", protocol=emulator["protocol"], **endpoint
        )
        yield dataclasses.replace(settings, snowflake=snowflake)


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
    dialect=DIALECT,
    one_writer=False,
    describe=describe,
    open=open_warehouse,
    resources=resources,
    io_manager=io_manager,
    audit_writer=audit_writer,
    demo=demo,
)
