"""The write-back engine: validate, plan against the server, write in transactions, recover.

Every resource carries a business identifier (``WritePolicy.identifier_system``). A round reads
the server's resources by identifier, then sends one transaction: a conditional create
(``ifNoneExist: identifier=...``) for a new resource, a version-aware update (``ifMatch``) for a
changed one, nothing for an unchanged one. After any failure the next round starts again from a
fresh read, so a transaction that committed although its answer was lost is recognised instead
of repeated, and a resource changed by someone else since the read is a conflict for the policy.

Identifiers are written one at a time within a run (each appears in one transaction at most, and
transactions are sent one after the other): sekmet showed duplicates from parallel conditional
creates, and many servers only make a conditional create atomic inside one transaction.

What each resource needs in a round (and the conflict policy) is decided in ``plan.py``; this
module admits the resources, runs the rounds and audits every attempt.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ..fhir.client import FhirClient, redact
from ..fhir.errors import RequestError, ResponseFormatError, TransientRequestError
from ..fhir.write import EntryOutcome, PreconditionFailedError, WriteClient
from .audit import SENDING, AuditRecord, AuditWriter, request_hash
from .lookup import find_by_identifier
from .outcome import ResourceOutcome
from .plan import Item, entry, plan, preview
from .policy import Resource, WritePolicy
from .provenance import provenance_entry
from .reconcile import reconcile
from .validate import offers_validate, server_issues, validate_resource


@dataclass
class Writer:
    """Writes resources back to one server under a :class:`WritePolicy`, auditing every attempt.

    Args:
        client: the connected FHIR client (needs create, update and search permissions).
        policy: identifier system, conflict policy, retries.
        audit: where audit records go.
        run_id: recorded with every attempt (the Dagster run id, say).
        now, sleep, make_uuid: injected clock, wait and transaction ids (tests).
    """

    client: FhirClient
    policy: WritePolicy
    audit: AuditWriter
    run_id: str
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep
    make_uuid: Callable[[], uuid.UUID] = uuid.uuid4
    _seen: set[str] = field(default_factory=set, repr=False)
    _validate_remotely: bool | None = field(default=None, repr=False)
    _reconciled: bool = field(default=False, repr=False)

    def write(self, resources: Sequence[Resource]) -> list[ResourceOutcome]:
        """Write ``resources`` as one transaction (retried, re-planned, split as the policy says).

        Returns:
            one outcome per input resource, in input order.
        """
        if not self._reconciled:  # attempts of a killed run first (see reconcile.py)
            reconcile(self.client, self.audit, self.run_id, self.now)
            self._reconciled = True
        items, outcomes = self._admit(resources)
        if outcomes and items and not self.policy.split_failed:
            reason = "not sent: another entry of its transaction is invalid"
            self._record(items, None, 0, "skip", None, "skipped", reason)
            outcomes += [item.done("failed", issues=(reason,)) for item in items]
        elif items:
            outcomes += self._transact(items)
        return sorted(outcomes, key=lambda o: o.index)

    def dry_run(self, resources: Sequence[Resource]) -> list[ResourceOutcome]:
        """Validate and compare with the server; write nothing (and audit nothing)."""
        items, outcomes = self._admit(resources, record=False)
        found = self._read(items)
        outcomes += [preview(item, found.get(item.identifier, [])) for item in items]
        return sorted(outcomes, key=lambda o: o.index)

    # ---- admission: validation and identifiers ----

    def _admit(
        self, resources: Sequence[Resource], *, record: bool = True
    ) -> tuple[list[Item], list[ResourceOutcome]]:
        items, invalid = [], []
        for index, original in enumerate(resources):
            resource = {k: v for k, v in original.items() if k not in ("id", "meta")}
            identifier = self._identifier(resource)
            item = Item(index, resource, identifier or "")
            errors = self._errors(resource, identifier)
            if errors:
                if record:
                    self._record([item], None, 0, "validate", None, "invalid", "; ".join(errors))
                invalid.append(replace(item.done("invalid", issues=errors), identifier=identifier))
            else:
                self._seen.add(item.identifier)
                items.append(item)
        return items, invalid

    def _identifier(self, resource: Resource) -> str | None:
        system = self.policy.identifier_system
        for identifier in resource.get("identifier") or ():
            if isinstance(identifier, dict) and identifier.get("system") == system:
                value = identifier.get("value")
                return f"{system}|{value}" if isinstance(value, str) and value else None
        return None

    def _errors(self, resource: Resource, identifier: str | None) -> tuple[str, ...]:
        errors = validate_resource(resource)
        if identifier is None:
            errors += (
                f"no identifier with system {self.policy.identifier_system}: write-back needs a "
                "business identifier so that a retry or re-run cannot create a duplicate",
            )
        elif identifier in self._seen:
            errors += ("the identifier appears twice in this run: one resource per identifier",)
        if not errors and self.policy.server_validate and self._server_validates(resource):
            errors = server_issues(self.client, resource)
        return errors

    def _server_validates(self, resource: Resource) -> bool:
        if self._validate_remotely is None:
            capabilities = self.client.capabilities()
            self._validate_remotely = offers_validate(capabilities, resource["resourceType"])
        return self._validate_remotely

    # ---- the transaction loop ----

    def _transact(self, items: list[Item]) -> list[ResourceOutcome]:
        done: list[ResourceOutcome] = []
        pending, attempt, transient, conflicts = items, 0, 0, 0
        while pending:
            attempt += 1
            transaction_id = str(self.make_uuid())
            try:
                pending, finished = plan(pending, self._read(pending), self.policy)
                done += finished
                if not pending:
                    break
                results = self._submit(pending, transaction_id, attempt)
            except PreconditionFailedError as exc:
                self._record(pending, transaction_id, attempt, None, 412, "conflict", exc)
                conflicts += 1
                if conflicts > self.policy.conflict_retries:
                    return done + [i.done("conflict", issues=exc.issues) for i in pending]
            except (TransientRequestError, ResponseFormatError) as exc:
                self._record(pending, transaction_id, attempt, None, exc.status, "transient", exc)
                transient += 1
                if transient >= self.policy.attempts:
                    return done + [i.done("failed", issues=(str(exc),)) for i in pending]
                self.sleep(self.policy.wait(exc, transient))
            except RequestError as exc:
                self._record(pending, transaction_id, attempt, None, exc.status, "rejected", exc)
                if self.policy.split_failed and len(pending) > 1:
                    return done + [o for item in pending for o in self._transact([item])]
                return done + [i.done("failed", issues=exc.issues or (str(exc),)) for i in pending]
            else:
                pending, finished = self._settle(pending, results, transaction_id, attempt)
                done += finished
                conflicts += bool(pending)  # a conditional create met a resource made meanwhile
        return done

    def _submit(self, items: list[Item], transaction_id: str, attempt: int) -> list[EntryOutcome]:
        """Send one transaction of ``items`` (plus a Provenance when the policy asks for one)."""
        entries = [entry(item) for item in items]
        sending = [self._audit_record(i, transaction_id, attempt, i.sent or "update", None, SENDING)
                   for i in items]  # fmt: skip
        if not self.policy.provenance:
            self.audit.record(sending)  # before sending: a kill -9 leaves it for reconcile
            return WriteClient(self.client).submit(entries)
        provenance = provenance_entry(entries, self.now(), self.run_id, transaction_id)
        assert provenance.resource is not None  # noqa: S101 (built just above)
        item = Item(-1, dict(provenance.resource), "", sent="create")
        self.audit.record([*sending, self._audit_record(item, transaction_id, attempt, "create",
                                                        None, SENDING)])  # fmt: skip
        try:
            results = WriteClient(self.client).submit([*entries, provenance])
        except RequestError as exc:  # its entries are settled by the caller, this one here
            self._record([item], transaction_id, attempt, "create", exc.status, "failed", exc)
            raise
        record = self._audit_record(item, transaction_id, attempt, "create", results[-1], "created")
        self.audit.record([record])
        return results[:-1]

    def _read(self, items: Sequence[Item]) -> dict[str, list[Resource]]:
        """The server's resources carrying each item's identifier."""
        wanted = [(item.resource["resourceType"], item.identifier) for item in items]
        return find_by_identifier(self.client, self.policy.identifier_system, wanted)

    def _settle(
        self, items: list[Item], results: list[EntryOutcome], transaction_id: str, attempt: int
    ) -> tuple[list[Item], list[ResourceOutcome]]:
        pending, finished, records = [], [], []
        for item, result in zip(items, results, strict=True):
            sent = item.sent or "update"
            if sent == "create" and result.status == 200:
                # the conditional create matched a resource made since our read: re-plan it
                item.sent = None
                records.append(self._audit_record(item, transaction_id, attempt, sent, result))
                pending.append(item)
                continue
            outcome = "created" if sent == "create" else "updated"
            records.append(self._audit_record(item, transaction_id, attempt, sent, result, outcome))
            finished.append(item.done(outcome, id=result.id, version_id=result.version_id))
        self.audit.record(records)
        return pending, finished

    # ---- audit ----

    def _record(
        self,
        items: Sequence[Item],
        transaction_id: str | None,
        attempt: int,
        interaction: str | None,
        status: int | None,
        outcome: str,
        failure: Exception | str | None,
    ) -> None:
        """Audit an attempt that got no per-entry answer (refused, failed, or never sent)."""
        text = failure if isinstance(failure, str) or failure is None else _failure_text(failure)
        self.audit.record(
            [
                self._audit_record(
                    item,
                    transaction_id,
                    attempt,
                    interaction or item.sent or "read",
                    None,
                    outcome,
                    status=status,
                    text=text,
                )
                for item in items
            ]
        )

    def _audit_record(
        self,
        item: Item,
        transaction_id: str | None,
        attempt: int,
        interaction: str,
        result: EntryOutcome | None,
        outcome: str = "existing",
        *,
        status: int | None = None,
        text: str | None = None,
    ) -> AuditRecord:
        return AuditRecord(
            recorded_at=self.now(),
            run_id=self.run_id,
            server=redact(self.client.base_url),
            transaction_id=transaction_id,
            attempt=attempt,
            resource_type=item.resource["resourceType"],
            resource_id=(result.id if result else None) or item.server_id,
            identifier=item.identifier or None,
            interaction=interaction,
            request_hash=request_hash(item.resource),
            http_status=result.status if result else status,
            outcome=outcome,
            version_id=result.version_id if result else None,
            outcome_text=text,
        )


def _failure_text(exc: Exception) -> str:
    issues = getattr(exc, "issues", ())
    return "; ".join(issues) if issues else str(exc)
