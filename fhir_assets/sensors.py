"""Sensors that drive Bulk Data exports: kick off on a cadence, poll without blocking, hand a
ready export to the ``bulk_land`` job; and relaunch export partitions that failed or never ran.

Every tick makes at most one request to the FHIR server (a kick-off or one status poll), so
ticks stay short however long an export takes. The export in flight and the next ``_since`` (the
last manifest's ``transactionTime``: the server's clock, never ours) live in the sensor cursor,
which Dagster stores durably: a restarted daemon polls the same job instead of kicking off anew.
"""

# No `from __future__ import annotations`: Dagster reads the real `context` annotation objects.
import time
from dataclasses import asdict, dataclass

import dagster as dg
import orjson

from .assets.bulk import BULK_JOB, BULK_KEY, EXPORTS, BulkExportResource
from .fhir.bulk import BulkClient, ExportError, ExportJob, Manifest
from .fhir.client import redact
from .resources import FhirServerResource

BULK_OP = "fhir_bulk__export"  # the op of the asset ["fhir_bulk", "export"]
ENDED_BADLY = frozenset({dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


@dataclass
class ExportCursor:
    """The export sensor's durable state."""

    status_url: str | None = None
    started_at: float = 0.0
    partition: str | None = None
    since: str | None = None  # the request's _since of the export in flight
    next_since: str | None = None  # transactionTime of the last finished export
    last_kickoff: float = 0.0

    @classmethod
    def from_json(cls, text: str | None) -> "ExportCursor":
        return cls(**orjson.loads(text)) if text else cls()

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()


def partition_key(started_at: float) -> str:
    """A sortable, readable partition per export: ``export-20261125T134500Z``."""
    return "export-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_at))


def run_config(cursor: ExportCursor) -> dict[str, object]:
    config = {"status_url": cursor.status_url, "started_at": cursor.started_at}
    return {"ops": {BULK_OP: {"config": config | {"since": cursor.since or ""}}}}


def kick_off(bulk: BulkExportResource, exporter: BulkClient, cursor: ExportCursor) -> str:
    """Start the next export (incremental from ``next_since``) and record it in the cursor."""
    request = bulk.request(cursor.next_since)
    job = exporter.kick_off(request)
    cursor.status_url, cursor.started_at = job.status_url, job.started_at
    cursor.partition, cursor.since = partition_key(job.started_at), request.since
    cursor.last_kickoff = job.started_at
    return f"kicked off {cursor.partition} (since {cursor.since or 'the beginning'})"


def poll(
    context: dg.SensorEvaluationContext, exporter: BulkClient, cursor: ExportCursor
) -> dg.SensorResult:
    """One status request for the export in flight."""
    job = ExportJob(str(cursor.status_url), cursor.started_at)
    try:
        answer = exporter.poll(job)
    except ExportError as exc:
        context.log.warning(f"export {cursor.partition} failed: {exc}")
        exporter.delete(job)
        cursor.status_url = cursor.partition = None
        return dg.SensorResult(skip_reason=f"export failed: {exc}", cursor=cursor.to_json())
    if not isinstance(answer, Manifest):
        progress = answer.progress or f"HTTP {answer.status}"
        reason = f"export {cursor.partition} in progress ({progress})"
        return dg.SensorResult(skip_reason=reason, cursor=cursor.to_json())
    request = dg.RunRequest(
        run_key=cursor.partition, partition_key=cursor.partition, run_config=run_config(cursor)
    )
    add = EXPORTS.build_add_request([cursor.partition])
    cursor.next_since = answer.transaction_time
    cursor.status_url = cursor.partition = None
    return dg.SensorResult(
        run_requests=[request], dynamic_partitions_requests=[add], cursor=cursor.to_json()
    )


def build_export_sensor(interval_s: float, tick_s: int = 30) -> dg.SensorDefinition:
    """The export sensor: a new export every ``interval_s`` seconds, polled every tick."""

    @dg.sensor(
        name="fhir_bulk_export_sensor",
        job_name=BULK_JOB,
        minimum_interval_seconds=tick_s,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Kicks off Bulk Data exports on a cadence and lands each when it is ready.",
    )
    def export_sensor(
        context: dg.SensorEvaluationContext, fhir: FhirServerResource, bulk: BulkExportResource
    ) -> dg.SensorResult:
        cursor = ExportCursor.from_json(context.cursor)
        with fhir.get_client() as client, BulkClient(client, bulk.options()) as exporter:
            if cursor.status_url is not None:
                return poll(context, exporter, cursor)
            due = cursor.last_kickoff + interval_s
            if time.time() < due:
                wait = f"next export in {due - time.time():.0f}s"
                return dg.SensorResult(skip_reason=wait, cursor=cursor.to_json())
            message = kick_off(bulk, exporter, cursor)
        context.log.info(f"{message} at {redact(fhir.base_url)}")
        return dg.SensorResult(skip_reason=message, cursor=cursor.to_json())

    return export_sensor


def unfinished(statuses: dict[str, dg.AssetPartitionStatus | None]) -> list[str]:
    """Partitions never materialized or whose last materialization failed (not running ones)."""
    return sorted(
        key
        for key, status in statuses.items()
        if status is None or status == dg.AssetPartitionStatus.FAILED
    )


def build_backfill_sensor(tick_s: int = 300) -> dg.SensorDefinition:
    """Relaunches export partitions that failed or never ran (after an outage, a killed run).

    The relaunched run reuses the last run's config (the status URL) and resumes from the
    partition's state file, so an export is never kicked off twice.
    """

    @dg.sensor(
        name="fhir_bulk_backfill_sensor",
        job_name=BULK_JOB,
        minimum_interval_seconds=tick_s,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Relaunches Bulk Data export partitions that failed or never ran.",
    )
    def backfill_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        keys = instance.get_dynamic_partitions(EXPORTS.name)
        statuses = instance.get_status_by_partition(BULK_KEY, keys, EXPORTS) or {}
        requests = []
        for key in unfinished({k: statuses.get(k) for k in keys}):
            by_partition = dg.RunsFilter(job_name=BULK_JOB, tags={"dagster/partition": key})
            runs = instance.get_runs(by_partition)
            if runs and runs[0].status not in ENDED_BADLY:
                continue  # queued or running: not ours to relaunch
            requests.append(
                dg.RunRequest(
                    run_key=f"{key}-retry-{len(runs)}",
                    partition_key=key,
                    run_config=runs[0].run_config if runs else {},
                    tags={"fhir/backfill": "true"},
                )
            )
        if not requests:
            return dg.SensorResult(skip_reason="every export partition is landed")
        return dg.SensorResult(run_requests=requests)

    return backfill_sensor


def build_raw_backfill_sensor(
    asset_keys: list[dg.AssetKey], tick_s: int = 600
) -> dg.AutomationConditionSensorDefinition:
    """Backfills raw-asset partitions that are missing or failed (an outage, a new resource
    type) through Dagster's declarative automation: each raw asset's ``backfill_condition``
    (``partitions.py``) picks the partitions, never one that a queued or running run or backfill
    targets, and the sensor emits them as a Dagster backfill (one run per range, by the
    single-run backfill policy)."""
    return dg.AutomationConditionSensorDefinition(
        "fhir_raw_backfill_sensor",
        target=dg.AssetSelection.assets(*asset_keys),
        minimum_interval_seconds=tick_s,
        default_status=dg.DefaultSensorStatus.STOPPED,
        emit_backfills=True,
        description="Backfills raw-asset partitions that are missing or failed.",
    )
