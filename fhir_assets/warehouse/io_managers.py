"""IO managers that load our tables (``fhir_raw.<type>``, ``fhir.<view>``) into users' assets.

Raw and view assets declare ``io_manager_key="fhir_io"``. They land by themselves (streaming
MERGE inside the asset, see ``assets/raw.py``) and return ``MaterializeResult``, so Dagster
never calls this IO manager's ``handle_output`` for them: dagster-duckdb's and
dagster-snowflake's ``DbIOManager`` would empty the table (or partition) first, which defeats
MERGE, and would need the whole output in memory. A downstream asset's input, though, is loaded
through the upstream asset's IO manager, so::

    @dg.asset(ins={"observation": dg.AssetIn(["fhir_raw", "observation"])})
    def risk(observation: pd.DataFrame) -> ...

receives ``fhir_raw.observation`` as a ``pandas.DataFrame`` (DuckDB: dagster-duckdb-pandas;
Snowflake: dagster-snowflake-pandas, column names lower-cased). Time-partitioned raw assets
declare ``partition_expr`` = ``last_updated``, so a downstream partition loads its window only.
There is no pyarrow or polars handler installed for these integrations (dagster-duckdb-pyarrow,
dagster-*-polars are separate packages), so pandas is the one type.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from .settings import WarehouseSettings

IO_MANAGER_KEY = "fhir_io"
PARTITION_EXPR = "last_updated"  # raw tables: the resource's meta.lastUpdated (a timestamp)


def build_io_manager(
    settings: WarehouseSettings, secrets: dict[str, Any] | None = None
) -> dg.ConfigurableIOManagerFactory:
    """The pandas IO manager on the configured warehouse (its kind's, ``kinds.py``).

    Args:
        secrets: values replacing the Snowflake password / key passphrase (e.g. ``dg.EnvVar``).
    """
    from .kinds import warehouse_kind

    io_manager: dg.ConfigurableIOManagerFactory = warehouse_kind(settings.kind).io_manager(
        settings, secrets
    )
    return io_manager


def duckdb_io_manager(
    settings: WarehouseSettings, secrets: dict[str, Any] | None = None
) -> dg.ConfigurableIOManagerFactory:
    """dagster-duckdb-pandas' IO manager on the DuckDB file."""
    from dagster_duckdb_pandas import DuckDBPandasIOManager

    return DuckDBPandasIOManager(database=settings.duckdb.path)


def snowflake_io_manager(
    settings: WarehouseSettings, secrets: dict[str, Any] | None = None
) -> dg.ConfigurableIOManagerFactory:
    """dagster-snowflake-pandas' IO manager (imported here, in Snowflake mode only)."""
    from dagster_snowflake_pandas import SnowflakePandasIOManager

    sf = settings.snowflake
    endpoint = {"host": sf.host, "port": sf.port, "protocol": sf.protocol}
    config = {
        # the IO manager's config requires an account; with an explicit host (an emulator,
        # a private link) the connector does not use it to find the endpoint
        "account": sf.account or "emulator",
        "user": sf.user,
        "password": sf.password,
        "private_key_path": sf.private_key_path,
        "private_key_password": sf.private_key_password,
        "role": sf.role,
        "warehouse": sf.warehouse,
        "database": sf.database,
        "additional_snowflake_connection_args": {k: v for k, v in endpoint.items() if v is not None}
        or None,
        **(secrets or {}),
    }
    return SnowflakePandasIOManager(**{k: v for k, v in config.items() if v is not None})


def raw_table_metadata(partitioned: bool) -> dict[str, Any]:
    """Definition metadata of a raw asset for its IO manager."""
    return {"partition_expr": PARTITION_EXPR} if partitioned else {}
