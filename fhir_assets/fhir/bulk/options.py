"""How patient to be with a Bulk Data export: waits, caps, parallelism."""

from __future__ import annotations

from dataclasses import dataclass

from ..ndjson import MAX_LINE_BYTES


@dataclass(frozen=True, slots=True)
class BulkOptions:
    """How patient to be with an export.

    Attributes:
        max_connections: parallel file downloads (and pooled connections).
        max_wait_s: cap on one wait; Oracle Health answers ``Retry-After`` of several hours.
        default_wait_s: wait when the server gives no ``Retry-After``.
        total_timeout_s: give up on an export this long after kick-off (real ones take days).
        attempts: retries of one request or file after transient failures.
        lenient: send ``Prefer: handling=lenient`` (ignore unsupported parameters, don't fail).
        join_types: one comma-joined ``_type`` (the IG's form; Oracle Health requires it).
        chunk_bytes: download write size: the memory one connection uses.
        group_only: refuse system and patient level before asking: Epic and Oracle Health
            export only ``Group/{id}`` (a group id configured with the vendor).
        min_poll_s: the shortest wait between status polls, whatever ``Retry-After`` says: the
            SMART reference server answers ``Retry-After: 1`` and blocks a client for 5 minutes
            past 60 requests a minute.
        poll_backoff: while a job's progress is unchanged, each wait is this many times the
            last one (up to ``max_wait_s``); a change of progress starts again from the floor.
        requests_per_s: the server's request budget when the client has none of its own
            (``FhirClient.rate_limit``); shared through a file by every export and sync of the
            server on this machine (``ratelimit.shared_rate_file``).
        max_line_bytes: a downloaded line longer than this is reported as bad and never read
            whole (``FHIR_MAX_LINE_BYTES``, the landing's bound, so both agree).
    """

    max_connections: int = 5
    max_wait_s: float = 300.0
    default_wait_s: float = 10.0
    total_timeout_s: float = 7 * 24 * 3600.0
    attempts: int = 5
    lenient: bool = False
    join_types: bool = True
    chunk_bytes: int = 1 << 20
    group_only: bool = False
    min_poll_s: float = 5.0
    poll_backoff: float = 1.5
    requests_per_s: float = 10.0
    max_line_bytes: int = MAX_LINE_BYTES
