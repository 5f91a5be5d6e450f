"""Write-back assets: rows of a warehouse table -> FHIR resources -> the server, in transactions.

``build_writeback_asset`` makes one asset per target: it reads the source table in batches,
maps each row with a plain function, and hands each batch to a :class:`Writer` (one transaction
per batch). Run config ``dry_run: true`` validates and diffs against the server without writing.
Every attempt lands in ``fhir_audit.writes`` in the same warehouse (DuckDB or Snowflake).
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation object.
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from pydantic import Field

from ..fhir.client import FhirClient, redact
from ..pools import DUCKDB_POOL
from ..resources import FhirServerResource
from ..views.definition import NAME
from ..warehouse import kinds
from ..warehouse.protocol import Warehouse, WarehouseOpener
from ..writeback import (
    ResourceOutcome,
    WritePolicy,
    Writer,
    audit_writer,
    granted_scope,
    permits_write,
    summarize,
)
from ..writeback.example import (
    SCORE_SCHEMA,
    SCORE_SYSTEM,
    SCORE_TABLE,
    abnormal_count_observation,
    score_sql,
)
from ..writeback.policy import ConflictMode

GROUP = "fhir_writeback"
Row = dict[str, Any]


class WritebackConfig(dg.Config):
    """Run configuration of a write-back asset."""

    dry_run: bool = Field(
        default=False, description="validate and compare with the server; write nothing"
    )


def require_write_scope(client: FhirClient, resource_type: str) -> str:
    """The granted scopes, or a Dagster failure when they do not allow writing the type."""
    granted = granted_scope(client)
    if granted is None or not permits_write(granted, resource_type):
        raise dg.Failure(
            description=(
                f"write-back of {resource_type} needs a write scope (system/*.write, "
                f"system/{resource_type}.*, or v2 system/*.cu); the server granted "
                f"{granted!r}. Set FHIR_WRITE_SCOPES and allow the scope for the client."
            )
        )
    return granted


def read_batches(warehouse: Warehouse, key: dg.AssetKey, size: int) -> Iterator[list[Row]]:
    """The source table of ``key`` (schema.table) in batches of dict rows, streamed through a
    DB-API cursor of the warehouse's connection (DuckDB's and Snowflake's both have one).

    Names are plain identifiers, used unquoted (Snowflake folds them to upper case, as it
    does when the table is created); column names come back lower-cased.
    """
    if not all(NAME.match(part) for part in key.path):
        raise dg.Failure(description=f"source table {key.path} is not schema.table of names")
    table = ".".join(key.path)
    cursor = warehouse.connection.cursor()
    try:
        cursor.execute(f"select * from {table}")  # noqa: S608 (validated names)
        columns = [str(d[0]).lower() for d in cursor.description or ()]
        while rows := cursor.fetchmany(size):
            yield [dict(zip(columns, row, strict=True)) for row in rows]
    finally:
        cursor.close()


def map_rows(
    rows: Sequence[Row], to_resource: Callable[[Row], dict[str, Any]], resource_type: str
) -> tuple[list[dict[str, Any]], list[ResourceOutcome]]:
    """Map rows to resources; a row whose mapping raises becomes a failed outcome (no values)."""
    resources, failed = [], []
    for index, row in enumerate(rows):
        try:
            resources.append(to_resource(row))
        except (KeyError, ValueError, TypeError) as exc:
            reason = f"mapping the row raised {type(exc).__name__}"
            failed.append(ResourceOutcome(index, resource_type, None, "failed", issues=(reason,)))
    return resources, failed


def build_writeback_asset(
    name: str,
    source_asset_key: dg.AssetKey | Sequence[str],
    resource_type: str,
    to_resource: Callable[[Row], dict[str, Any]],
    batch_size: int,
    *,
    policy: WritePolicy,
    key_prefix: Sequence[str] = (GROUP,),
    description: str | None = None,
    warehouse_kind: str = "duckdb",
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """An asset that writes the rows of ``source_asset_key``'s table back as ``resource_type``.

    Args:
        name: the asset name (under ``key_prefix``).
        source_asset_key: the warehouse table (schema.table) to read.
        resource_type: the FHIR type written; the write scope is checked for it.
        to_resource: row (column -> value) -> resource carrying ``policy.identifier_system``.
        batch_size: resources per transaction.
        policy: identifiers, conflicts, retries (see :class:`WritePolicy`).
    """
    source = dg.AssetKey.from_coercible(source_asset_key)

    @dg.asset(
        name=name,
        key_prefix=list(key_prefix),
        group_name=GROUP,
        deps=[source],
        kinds={"fhir", warehouse_kind},
        tags={"fhir/resource_type": resource_type},
        description=description
        or f"Writes {source.to_user_string()} back to the FHIR server as {resource_type}.",
        pool=pool,  # the FHIR server's (fhir:<host>)
    )
    def writeback(
        context: AssetExecutionContext,
        config: WritebackConfig,
        fhir_writer: FhirServerResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> dg.MaterializeResult[None]:
        started = time.monotonic()
        outcomes: list[ResourceOutcome] = []
        batches = 0
        with fhir_writer.get_client() as client, landing.open_warehouse(landing=False) as warehouse:
            if not config.dry_run:
                require_write_scope(client, resource_type)
            audit = audit_writer(warehouse.dialect.name, warehouse.connection)
            writer = Writer(client, policy, audit, run_id=context.run.run_id)
            for rows in read_batches(warehouse, source, batch_size):
                resources, unmapped = map_rows(rows, to_resource, resource_type)
                write = writer.dry_run if config.dry_run else writer.write
                outcomes += unmapped + write(resources)
                batches += 1
                context.log.info("batch %d: %s", batches, summarize(outcomes))
        metadata = outcome_metadata(outcomes, config.dry_run, batches, fhir_writer.base_url)
        metadata["duration_s"] = round(time.monotonic() - started, 3)
        failed = int(metadata["failed"])
        if failed and not config.dry_run:
            raise dg.Failure(
                description=f"{failed} of {len(outcomes)} {resource_type} resources were not "
                f"written; see fhir_audit.writes where run_id = '{context.run.run_id}'",
                metadata=metadata,
            )
        return dg.MaterializeResult(metadata=metadata)

    return writeback


def outcome_metadata(
    outcomes: Sequence[ResourceOutcome], dry_run: bool, batches: int, server: str
) -> dict[str, Any]:
    """Materialization metadata: counts, and for a dry run which elements would change."""
    changed = Counter(element for o in outcomes for element in o.changed)
    return {
        **summarize(outcomes),
        "resources": len(outcomes),
        "batches": batches,
        "dry_run": dry_run,
        "server": redact(server),
        "audit_table": "fhir_audit.writes",
        **({"changed_elements": dict(changed)} if dry_run else {}),
    }


def build_abnormal_count_assets(
    batch_size: int = 100,
    *,
    on_conflict: ConflictMode = "fail",
    server_validate: bool = False,
    warehouse: str = "duckdb",
    pool: str | None = None,
) -> list[dg.AssetsDefinition]:
    """The example: a per-patient abnormal-observation count, written back as Observations
    (``pool``: the FHIR server's, for the write-back; the count queues on ``duckdb``)."""
    policy = WritePolicy(SCORE_SYSTEM, on_conflict=on_conflict, server_validate=server_validate)

    @dg.asset(
        name=SCORE_TABLE,
        key_prefix=[SCORE_SCHEMA],
        group_name=GROUP,
        deps=[dg.AssetKey(["fhir_raw", "patient"]), dg.AssetKey(["fhir_raw", "observation"])],
        kinds={warehouse},
        description="Per patient, how many Observations are interpreted as abnormal.",
        pool=DUCKDB_POOL if kinds.warehouse_kind(warehouse).one_writer else None,
    )
    def abnormal_count(
        context: AssetExecutionContext,
        fhir_writer: FhirServerResource,
        landing: dg.ResourceParam[WarehouseOpener],
    ) -> dg.MaterializeResult:
        # only the rows of the server written back to: the tables keep every server's rows
        server = redact(fhir_writer.base_url)
        with landing.open_warehouse(landing=False) as wh:
            wh.fetch(f"create schema if not exists {SCORE_SCHEMA}")
            wh.fetch(score_sql(wh.dialect, wh.dialect.literal(server)))
            count = f"select count(*) from {SCORE_SCHEMA}.{SCORE_TABLE}"  # noqa: S608 (constants)
            [(rows,)] = wh.fetch(count)
        return dg.MaterializeResult(metadata={"patients": int(rows)})

    writeback = build_writeback_asset(
        "abnormal_count_observation",
        [SCORE_SCHEMA, SCORE_TABLE],
        "Observation",
        abnormal_count_observation,
        batch_size,
        policy=policy,
        warehouse_kind=warehouse,
        pool=pool,
    )
    return [abnormal_count, writeback]
