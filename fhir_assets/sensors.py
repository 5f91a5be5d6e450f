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
    request = bulk.request(cursor.next_since, exporter.client)
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


def ranges(keys: set[str], ordered: list[str]) -> list[tuple[str, str]]:
    """The contiguous runs of ``keys`` within ``ordered`` (all partition keys, in order)."""
    index = {key: n for n, key in enumerate(ordered)}
    found: list[tuple[str, str]] = []
    for key in sorted(keys, key=index.__getitem__):
        if found and index[key] == index[found[-1][1]] + 1:
            found[-1] = (found[-1][0], key)
        else:
            found.append((key, key))
    return found


def build_raw_backfill_sensor(
    asset_keys: list[dg.AssetKey],
    partitions_def: dg.PartitionsDefinition,
    job_name: str = "sync_all",
    tick_s: int = 600,
    retry_s: float = 3600.0,
) -> dg.SensorDefinition:
    """Finds time partitions of the raw assets that are missing or failed (an outage, a new
    resource type) and requests one run per contiguous range: the raw assets have a single-run
    backfill policy, so a range is one run, as a Dagster backfill of it would be. A range is
    requested again at most every ``retry_s`` seconds (the cursor remembers when)."""

    @dg.sensor(
        name="fhir_raw_backfill_sensor",
        job_name=job_name,
        minimum_interval_seconds=tick_s,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Backfills raw-asset partitions that are missing or failed.",
    )
    def raw_backfill_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        keys = partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        missing: set[str] = set()
        for asset_key in asset_keys:
            statuses = instance.get_status_by_partition(asset_key, keys, partitions_def) or {}
            missing |= set(unfinished({k: statuses.get(k) for k in keys}))
        asked: dict[str, float] = orjson.loads(context.cursor) if context.cursor else {}
        now, requests = time.time(), []
        for start, end in ranges(missing, keys):
            if now - asked.get(f"{start}..{end}", 0.0) < retry_s:
                continue
            asked[f"{start}..{end}"] = now
            tags = {  # the tags Dagster's own backfills put on a single-run range
                "dagster/asset_partition_range_start": start,
                "dagster/asset_partition_range_end": end,
                "fhir/backfill": "raw",
            }
            requests.append(dg.RunRequest(tags=tags))
        cursor = orjson.dumps(asked).decode()
        if not requests:
            return dg.SensorResult(skip_reason="no raw partitions to backfill", cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return raw_backfill_sensor
