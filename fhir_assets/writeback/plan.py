"""Planning a write-back round: what each resource needs, given what the server holds.

The writer (``writer.py``) reads the server's resources by identifier; here each resource is
compared with its match: unchanged (nothing to send), new (a conditional create), changed (a
version-aware update), or changed on the server since it was read (a conflict, settled by
``WritePolicy.on_conflict``). Nothing here talks to the server or writes the audit.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..fhir.write import BundleEntry, token
from .outcome import IGNORED_ELEMENTS, ResourceOutcome, comparable
from .policy import Resource, WritePolicy
from .validate import validate_resource

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Item:
    """One resource on its way to the server (mutable working state of the writer)."""

    index: int
    resource: Resource
    identifier: str
    base_version: str | None = None  # server version the update is based on; None: create
    server_id: str | None = None
    planned: bool = False
    sent: str | None = None  # last interaction sent: create / update
    conflicts: int = 0

    def done(self, outcome: str, **kwargs: Any) -> ResourceOutcome:
        return ResourceOutcome(
            self.index,
            self.resource["resourceType"],
            self.identifier,
            outcome,
            id=kwargs.pop("id", self.server_id),
            version_id=kwargs.pop("version_id", self.base_version),
            conflicts=self.conflicts,
            **kwargs,
        )


def preview(item: Item, matches: list[Resource]) -> ResourceOutcome:
    """What writing ``item`` would do, given the server's resources carrying its identifier
    (``Writer.dry_run``)."""
    server = matches[0] if len(matches) == 1 else None
    if len(matches) > 1:
        return item.done("failed", issues=(duplicates(item, matches),))
    if server is None:
        return item.done("would-create")
    if comparable(server) == comparable(item.resource):
        return item.done("unchanged", id=server["id"])
    keys = {k for k in {*server, *item.resource} if k not in IGNORED_ELEMENTS}
    changed = tuple(sorted(k for k in keys if server.get(k) != item.resource.get(k)))
    return item.done("would-update", id=server["id"], changed=changed)


def plan(
    items: list[Item], found: dict[str, list[Resource]], policy: WritePolicy
) -> tuple[list[Item], list[ResourceOutcome]]:
    """Split ``items`` into those to send (planned against the server's resources ``found`` by
    identifier) and those finished (unchanged, landed by an earlier attempt, duplicated on the
    server, or settled by the conflict policy)."""
    pending, finished = [], []
    for item in items:
        matches = found[item.identifier]
        server = matches[0] if len(matches) == 1 else None
        version = (server or {}).get("meta", {}).get("versionId")
        if len(matches) > 1:
            finished.append(item.done("failed", issues=(duplicates(item, matches),)))
            continue
        if server is not None and comparable(server) == comparable(item.resource):
            outcome = {"create": "created", "update": "updated"}.get(item.sent or "")
            finished.append(item.done(outcome or "unchanged", id=server["id"], version_id=version))
            continue
        if item.planned and version != item.base_version:
            resolved = resolve(item, server, policy)
            if resolved is not None:
                finished.append(resolved)
                continue
        item.planned, item.base_version = True, version
        item.server_id = server["id"] if server else None
        pending.append(item)
    return pending, finished


def resolve(item: Item, server: Resource | None, policy: WritePolicy) -> ResourceOutcome | None:
    """Someone changed the resource since we read it: apply the conflict policy."""
    item.conflicts += 1
    item.sent = None  # what we sent did not land as we sent it
    mode = policy.on_conflict
    log.info("%s changed on the server since read: policy %s", item.resource["resourceType"], mode)
    if mode == "fail":
        return item.done("conflict", issues=("changed on the server since it was read",))
    if mode == "server-wins":
        return item.done("server-kept", id=(server or {}).get("id"))
    if mode == "merge" and server is not None and policy.merge is not None:
        merged = policy.merge(copy.deepcopy(server), copy.deepcopy(item.resource))
        item.resource = {k: v for k, v in merged.items() if k not in ("id", "meta")}
        errors = validate_resource(item.resource)
        if errors:
            return item.done("invalid", issues=errors)
    return None  # client-wins or merged: write over the server's current version


def entry(item: Item) -> BundleEntry:
    """The transaction entry of a planned item: a conditional create or a version-aware
    update; notes which one was sent."""
    if item.server_id is None:
        item.sent = "create"
        query = urlencode({"identifier": token(*item.identifier.split("|", 1))})
        return BundleEntry.create(item.resource, if_none_exist=query)
    item.sent = "update"
    resource = {**item.resource, "id": item.server_id}
    return BundleEntry.update(resource, version_id=item.base_version)


def duplicates(item: Item, matches: list[Resource]) -> str:
    ids = ", ".join(sorted(str(m.get("id")) for m in matches))
    return f"{len(matches)} resources on the server carry this identifier ({ids}): resolve by hand"
