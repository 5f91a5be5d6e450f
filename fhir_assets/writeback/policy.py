"""The write-back policy: how conflicts, transient failures and failed transactions are handled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Resource = dict[str, Any]
# merge(server_resource, client_resource) -> the resource to write over the server's version
MergeCallback = Callable[[Resource, Resource], Resource]
ConflictMode = Literal["fail", "server-wins", "client-wins", "merge"]


@dataclass(frozen=True, slots=True)
class WritePolicy:
    """How a :class:`~fhir_assets.writeback.writer.Writer` reacts when a write does not go through.

    Attributes:
        identifier_system: the business identifier system every written resource must carry;
            conditional creates and re-reads use it, so a retry or re-run cannot duplicate.
        on_conflict: after a 412 (someone changed the resource since it was read):
            ``fail`` reports it; ``server-wins`` keeps the server's version; ``client-wins``
            writes ours over it; ``merge`` writes ``merge(server, ours)``.
        merge: the callback for ``on_conflict="merge"``.
        conflict_retries: re-read-and-retry rounds after a 412, per transaction.
        attempts: tries of a transaction after transient failures (5xx, dropped connection).
        backoff_s: first wait after a transient failure; doubles each time up to max_backoff_s.
        max_backoff_s: cap on one wait.
        split_failed: when a transaction holds an invalid entry, send the valid ones without it;
            when the server refuses a transaction (4xx), resend its entries one per
            transaction so only the bad one fails. Off: the whole transaction fails.
        server_validate: also ask the server's ``$validate`` (when offered) before sending.
        provenance: add a FHIR Provenance to every transaction, targeting what it writes.
    """

    identifier_system: str
    on_conflict: ConflictMode = "fail"
    merge: MergeCallback | None = None
    conflict_retries: int = 3
    attempts: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    split_failed: bool = False
    server_validate: bool = False
    provenance: bool = False

    def __post_init__(self) -> None:
        if self.on_conflict == "merge" and self.merge is None:
            raise ValueError("on_conflict='merge' needs a merge callback")
        if self.attempts < 1 or self.conflict_retries < 0:
            raise ValueError("attempts must be >= 1 and conflict_retries >= 0")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before try number ``attempt + 1`` (``attempt`` counts from 1): the
        library's one backoff (``RetryPolicy.backoff``) with this policy's numbers."""
        from ..fhir.retry import RetryPolicy

        retry = RetryPolicy(self.attempts, self.backoff_s, self.max_backoff_s)
        return retry.backoff(attempt)

    def wait(self, error: BaseException, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th transient failure: the server's
        ``Retry-After`` when it sent one (``BusyError.wait_s``), else :meth:`backoff`; capped
        at ``max_backoff_s`` either way."""
        asked = getattr(error, "wait_s", None)
        if asked is None:
            return self.backoff(attempt)
        return min(float(asked), self.max_backoff_s)
