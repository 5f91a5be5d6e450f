"""Landing into Snowflake: Parquet -> PUT to a stage -> COPY INTO a staging table -> MERGE.

Each batch becomes a Parquet file PUT to a stage of this landing as it is built (local memory
stays one batch); ``finish`` loads them with one COPY INTO into a staging table and applies one
MERGE, so a large landing costs a handful of statements, not row inserts. The staging tables
are dropped afterwards; the temporary stage goes with the session. Importing this module costs
about a second (the connector is imported when a connection opens); no Dagster here, so the CLI
lands into Snowflake without starting Dagster.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import merge_sql, sql
from .kind_snowflake import DIALECT
from .layout import RAW_SCHEMA
from .protocol import Outcome, Provenance

if TYPE_CHECKING:
    import pyarrow as pa

# duckdb, pyarrow and the line checker are imported where a landing uses them: this module
# also holds SnowflakeSettings, which `fhir_assets.settings` (and so every command) imports.

QUARANTINE_STAGE_DDL = (
    "resource_type VARCHAR, source VARCHAR, line BIGINT, error VARCHAR, raw VARCHAR"
)


def _env(name: str, help: str) -> dict[str, Any]:
    return {"env": name, "help": help}


@dataclass(frozen=True, slots=True)
class SnowflakeSettings:
    """How to reach Snowflake: an account, or (``host``/``port``/``protocol``) any endpoint
    speaking its protocol, such as the fakesnow emulator. ``repr`` never shows secrets.

    Key-pair auth (``private_key_path``, PKCS#8 PEM) is what a service user should use; the
    password is for trials and the emulator.
    """

    account: str = field(default="", metadata=_env("SNOWFLAKE_ACCOUNT", "account identifier"))
    user: str = field(default="", metadata=_env("SNOWFLAKE_USER", "user (a service user)"))
    password: str | None = field(
        default=None,
        repr=False,
        metadata={**_env("SNOWFLAKE_PASSWORD", "password"), "secret": True},
    )
    private_key_path: str | None = field(
        default=None,
        metadata=_env("SNOWFLAKE_PRIVATE_KEY_PATH", "key-pair auth: PKCS#8 PEM private key file"),
    )
    private_key_password: str | None = field(
        default=None,
        repr=False,
        metadata={**_env("SNOWFLAKE_PRIVATE_KEY_PASSWORD", "its passphrase"), "secret": True},
    )
    role: str | None = field(default=None, metadata=_env("SNOWFLAKE_ROLE", "role"))
    warehouse: str | None = field(
        default=None, metadata=_env("SNOWFLAKE_WAREHOUSE", "virtual warehouse (compute)")
    )
    database: str = field(default="", metadata=_env("SNOWFLAKE_DATABASE", "database"))
    schema: str | None = field(
        default=None, metadata=_env("SNOWFLAKE_SCHEMA", "default schema of the session")
    )
    host: str | None = field(
        default=None, metadata=_env("SNOWFLAKE_HOST", "host (default: from the account)")
    )
    port: int | None = field(default=None, metadata=_env("SNOWFLAKE_PORT", "port (default 443)"))
    protocol: str | None = field(
        default=None, metadata=_env("SNOWFLAKE_PROTOCOL", "`https` (default) or `http`")
    )

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments of ``snowflake.connector.connect`` (unset values left out)."""
        args: dict[str, Any] = {
            "account": self.account,
            "user": self.user,
            "password": self.password,
            "private_key_file": self.private_key_path,
            "private_key_file_pwd": self.private_key_password,
            "role": self.role,
            "warehouse": self.warehouse,
            "database": self.database,
            "schema": self.schema,
            "host": self.host,
            "port": self.port,
            "protocol": self.protocol,
            "application": "fhir-assets",
            # no connector telemetry sent out of band (to Snowflake, or to an emulator's 404)
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
        return {name: value for name, value in args.items() if value not in (None, "")}


def connect(settings: SnowflakeSettings) -> Any:
    """A snowflake-connector-python connection; close it when done.

    Raises:
        ValueError: no account (or host) or no user.
    """
    if not (settings.account or settings.host) or not settings.user:
        raise ValueError(
            "Snowflake mode needs SNOWFLAKE_ACCOUNT (or SNOWFLAKE_HOST), SNOWFLAKE_USER and, for "
            "the pipeline, SNOWFLAKE_DATABASE"
        )
    import snowflake.connector

    return snowflake.connector.connect(**settings.connect_args())


@contextmanager
def open_snowflake(settings: SnowflakeSettings) -> Iterator[SnowflakeWarehouse]:
    """A ``SnowflakeWarehouse`` on a new connection, closed afterwards."""
    connection = connect(settings)
    try:
        yield SnowflakeWarehouse(connection)
    finally:
        connection.close()


class SnowflakeWarehouse:
    """Landing into Snowflake through one connector connection with a current database.

    Identifiers are unquoted, so ``fhir_raw.observation`` is ``FHIR_RAW.OBSERVATION``.
    """

    dialect = DIALECT

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def fetch(self, query: str) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        with self.connection.cursor() as cursor:
            return list(cursor.execute(query).fetchall())

    def execute(self, statement: str) -> None:
        """Run one statement."""
        with self.connection.cursor() as cursor:
            cursor.execute(statement)

    @contextmanager
    def open_landing(
        self, table: str, provenance: Provenance, *, history: bool = False
    ) -> Iterator[SnowflakeLanding]:
        """Create the tables if needed, plus a stage and staging tables for this landing."""
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.identifier(RAW_SCHEMA)}")
        # MERGE needs a current schema (fakesnow asserts; Snowflake resolves names with it).
        self.execute(f"USE SCHEMA {sql.identifier(RAW_SCHEMA)}")
        self.execute(sql.create_raw_table(self.dialect, table))
        self.execute(sql.create_quarantine_table(self.dialect))
        if history:
            self.execute(sql.create_raw_table(self.dialect, sql.history_table(table)))
        landing = SnowflakeLanding(self, table, provenance, uuid.uuid4().hex[:12], history)
        # A temporary stage disappears with the session (and the emulator has no DROP STAGE);
        # transient staging tables skip Fail-safe storage and are dropped below.
        self.execute(f"CREATE TEMPORARY STAGE {sql.identifier(landing.stage_name)}")
        self.execute(
            f"CREATE TRANSIENT TABLE {sql.identifier(landing.rows_table)} ({merge_sql.STAGE_DDL})"
        )
        self.execute(
            f"CREATE TRANSIENT TABLE {sql.identifier(landing.quarantine_table)} "
            f"({QUARANTINE_STAGE_DDL})"
        )
        try:
            with tempfile.TemporaryDirectory(prefix="fhir-landing-") as folder:
                landing.folder = Path(folder)
                yield landing
        finally:
            if landing.checker is not None:
                landing.checker.close()
            self.execute(f"DROP TABLE IF EXISTS {sql.identifier(landing.rows_table)}")
            self.execute(f"DROP TABLE IF EXISTS {sql.identifier(landing.quarantine_table)}")


@dataclass
class SnowflakeLanding:
    """One landing session: batches are PUT as Parquet; ``finish`` copies and merges."""

    warehouse: SnowflakeWarehouse
    table: str
    provenance: Provenance
    tag: str
    history: bool = False
    folder: Path = field(default_factory=Path)
    files: int = 0
    quarantine_files: int = 0
    checker: Any = None  # an in-memory DuckDB connection, opened by the first stage_lines

    @property
    def stage_name(self) -> str:
        return f"{RAW_SCHEMA}._landing_{self.tag}"

    @property
    def rows_table(self) -> str:
        return f"{RAW_SCHEMA}._staging_{self.tag}"

    @property
    def quarantine_table(self) -> str:
        return f"{RAW_SCHEMA}._staging_quarantine_{self.tag}"

    def stage_lines(self, lines: pa.Table, resource_type: str) -> list[int]:
        """Check JSON lines on a local in-memory DuckDB (as the DuckDB landing does), stage
        those that pass; return the positions (``n``) of those that do not."""
        import duckdb

        from .lines import checked_rows

        if self.checker is None:
            self.checker = duckdb.connect()
        rows, rejected = checked_rows(self.checker, lines, resource_type)
        if rows.num_rows:
            self.stage(rows)
        return rejected

    def stage(self, rows: pa.Table) -> None:
        """Write a batch (``lines.STAGE_SCHEMA``) as Parquet and PUT it under ``rows/``."""
        self.files += 1
        self._put(rows, f"rows/{self.files:06d}.parquet")

    def quarantine(self, rows: pa.Table) -> None:
        """Write quarantine rows as Parquet and PUT them under ``quarantine/``."""
        self.quarantine_files += 1
        self._put(rows, f"quarantine/{self.quarantine_files:06d}.parquet")

    def finish(self) -> Outcome:
        """COPY the staged files into the staging tables, then MERGE both."""
        p, wh = self.provenance, self.warehouse
        outcome = Outcome()
        if self.files:
            self._copy(self.rows_table, "rows")
            for tombstones in (False, True):
                staged = merge_sql.newest_staged(
                    wh.dialect, self.rows_table, p.source_server, p.sync_id, p.at,
                    tombstones=tombstones,
                )  # fmt: skip
                counts = wh.fetch(merge_sql.count_outcomes(self.table, staged))[0]
                wh.execute(merge_sql.merge_raw(self.table, staged))
                outcome += Outcome(*(int(n) for n in counts))
            if self.history:
                versions = merge_sql.staged_versions(
                    wh.dialect, self.rows_table, p.source_server, p.sync_id, p.at
                )
                wh.execute(merge_sql.merge_history(self.table, versions))
        if self.quarantine_files:
            self._copy(self.quarantine_table, "quarantine")
            wh.execute(
                merge_sql.merge_quarantine(
                    wh.dialect, self.quarantine_table, p.source_server, p.sync_id, p.at
                )
            )
        return outcome

    def _put(self, rows: pa.Table, name: str) -> None:
        path = self.folder / name
        import pyarrow.parquet as pq

        path.parent.mkdir(exist_ok=True)
        pq.write_table(rows, path)
        # Parquet is compressed already: AUTO_COMPRESS=FALSE keeps the name COPY expects.
        self.warehouse.execute(
            f"PUT 'file://{path}' @{sql.identifier(self.stage_name)}/{path.parent.name} "
            "AUTO_COMPRESS=FALSE"
        )
        path.unlink()

    def _copy(self, table: str, folder: str) -> None:
        # fakesnow supports only COPY INTO t FROM @stage with FILE_FORMAT and
        # MATCH_BY_COLUMN_NAME (no PATTERN/FILES), hence one stage folder per target table.
        self.warehouse.execute(
            f"COPY INTO {sql.identifier(table)} FROM @{sql.identifier(self.stage_name)}/{folder} "
            "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
        )
