"""Incremental ``fhir_deid.<view>`` builds, when the view itself is built incrementally.

The table carries one extra column, ``_deid_key``: the keyed pseudonym of each row's resource
key (``_source_server``, ``_resource_id`` of the view). A build after the first reads the keys
whose raw row was landed after the previous build's watermark, deletes the rows of their
pseudonyms and inserts those keys' rows of ``fhir.<view>`` de-identified, in one transaction.

The watermark is the **view's** (its last build's ``fhir/watermark``), not the raw table's
latest ``ingested_at``: the raw table may have landed rows since the view was built, and a
deid build that recorded the raw watermark would skip those keys forever once the view caught
up. The view's watermark never runs ahead of what ``fhir.<view>`` holds, so recomputing every
key landed after it is always enough (a few keys recomputed twice are harmless).

A full rebuild (``CREATE OR REPLACE``) happens when the deid hash changes (the policy, the
de-identifying SQL with its reference day, or the view's own query hash), when the key's
fingerprint changes, without a watermark, or when a table lacks its key columns.
"""

# Identifiers pass ``quoted``/``quote``; values are the watermark literal and hex pads.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from ..views.compiler import KEY_COLUMNS, quote
from ..views.incremental import BuildState, count, refresh_keys, table_has_keys
from ..views.runner import VIEW_SCHEMA
from ..warehouse.layout import RAW_SCHEMA
from ..warehouse.sql import identifier, quoted
from .build import DEID_SCHEMA, ROW_KEY, DeidContext, deid_select, row_key_sql
from .keyed import DeidKey
from .policy import ViewPolicy

if TYPE_CHECKING:
    from ..warehouse.protocol import Warehouse

CHANGED = "fhir_deid_changed_keys"  # a temporary table, one per connection
# the deid hash is over the SQL written with this key, so it names the policy, not the key
PLACEHOLDER = DeidKey.from_secret("fhir-deid-hash-placeholder-key-0000")
FINGERPRINT_LABEL = b"fhir-deid:key-fingerprint:v1"


@dataclass(frozen=True, slots=True)
class DeidState:
    """What a build leaves in its materialization metadata for the next one."""

    deid_hash: str  # sha256 of the de-identifying SQL (placeholder key) and the view's hash
    key_fingerprint: str  # keyed fingerprint of FHIR_DEID_KEY: never the key, no pseudonym
    watermark: str | None  # the view's watermark the table reflects


@dataclass(frozen=True, slots=True)
class DeidResult:
    rows: int  # rows in the table afterwards
    mode: str  # "full" or "incremental"
    changed: int  # resources recomputed (-1: all, on a full build)
    reason: str  # why a full build was full ("" when incremental)
    state: DeidState


def key_fingerprint(key: DeidKey) -> str:
    """HMAC of a fixed label under the key, 16 hex digits: tells keys apart, derives nothing
    (no resource id has this label's text, which holds ``:``)."""
    return hmac.new(key.hmac_key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def deid_hash(deid_sql: str, view_hash: str) -> str:
    """sha256 of the view's query hash and the de-identifying SQL (written with PLACEHOLDER)."""
    return hashlib.sha256(f"{view_hash}\n{deid_sql}".encode()).hexdigest()


def plan(
    warehouse: Warehouse,
    policy: ViewPolicy,
    state: DeidState,
    previous: DeidState | None,
) -> str:
    """Why the build must be full, or "" when it can be incremental."""
    name = policy.view.name
    if previous is None or not previous.watermark or not state.watermark:
        return "no watermark"
    if previous.key_fingerprint != state.key_fingerprint:
        return "key changed"
    if previous.deid_hash != state.deid_hash:
        return "policy or view changed"
    if not table_has_keys(warehouse, VIEW_SCHEMA, name):
        return "view has no key columns"
    if not has_row_key(warehouse, name):
        return "table has no key column"
    return ""


def has_row_key(warehouse: Warehouse, table: str) -> bool:
    names = warehouse.fetch(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE UPPER(table_schema) = '{DEID_SCHEMA.upper()}' AND UPPER(table_name) = "
        f"'{table.upper()}'"
    )
    return ROW_KEY in {str(name).lower() for (name,) in names}


def build_deid(
    warehouse: Warehouse,
    policy: ViewPolicy,
    key: DeidKey,
    today: date,
    view: BuildState | None,
    previous: DeidState | None = None,
) -> DeidResult:
    """Build ``fhir_deid.<view>``: incrementally from ``previous`` when it still applies, else
    in full.

    Args:
        view: the hash and watermark of the view's last build (its materialization metadata);
            None when unknown (then the build is full and the next one too).
        previous: this table's last state.
    """
    d = warehouse.dialect
    name = policy.view.name
    ctx = DeidContext(key, d, today)
    keyed = table_has_keys(warehouse, VIEW_SCHEMA, name)
    shape = deid_select(policy, DeidContext(PLACEHOLDER, d, today), keyed=keyed)
    state = DeidState(
        deid_hash(shape, view.view_hash if view else ""),
        key_fingerprint(key),
        view.watermark if view else None,
    )
    target = quoted(d, DEID_SCHEMA, name)
    warehouse.fetch(f"CREATE SCHEMA IF NOT EXISTS {identifier(DEID_SCHEMA)}")
    reason = plan(warehouse, policy, state, previous)
    if not reason and previous is not None and previous.watermark:
        changed = update_since(warehouse, policy, ctx, target, previous.watermark)
        return DeidResult(count(warehouse, target), "incremental", changed, "", state)
    select = deid_select(policy, ctx, keyed=keyed)
    warehouse.fetch(f"CREATE OR REPLACE TABLE {target} AS {select}")
    return DeidResult(count(warehouse, target), "full", -1, reason, state)


def update_since(
    warehouse: Warehouse, policy: ViewPolicy, ctx: DeidContext, target: str, watermark: str
) -> int:
    """Recompute the resources landed after ``watermark``; returns how many."""
    d = warehouse.dialect
    raw = identifier(RAW_SCHEMA, policy.view.resource.lower())
    moment = d.to_timestamp(d.literal(watermark))
    warehouse.fetch(
        f"CREATE OR REPLACE TEMPORARY TABLE {CHANGED} AS SELECT DISTINCT source_server, id "
        f"FROM {raw} WHERE ingested_at > {moment}"
    )
    changed = count(warehouse, CHANGED)
    if changed:
        server, rid = (quote(column) for column in KEY_COLUMNS)
        view = quoted(d, VIEW_SCHEMA, policy.view.name)
        rows = deid_select(
            policy,
            ctx,
            source=f"(SELECT v.* FROM {view} AS v WHERE EXISTS (SELECT 1 FROM {CHANGED} AS c "
            f"WHERE c.source_server = v.{server} AND c.id = v.{rid}))",
            keyed=True,
        )
        pseudonyms = (
            f"(SELECT DISTINCT {row_key_sql(ctx.key, d, 'source_server', 'id')} AS rk "
            f"FROM {CHANGED})"
        )
        refresh_keys(warehouse, target, pseudonyms, rows, f"{target}.{quote(ROW_KEY)} = k.rk")
    warehouse.fetch(f"DROP TABLE IF EXISTS {CHANGED}")
    return changed
