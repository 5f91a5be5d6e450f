"""The Dagster pools a deployment declares, and their default limits from the server profile.

Three pools bound steps across all runs (Dagster's op-granularity pools):

- ``fhir:<host>``: every step that searches or writes the FHIR server at ``<host>`` (raw assets,
  the write-back). Limit: the profile's ``concurrent_syncs``.
- ``fhir-bulk:<host>``: the Bulk Data export step (kick-off when launched by hand, polling,
  download, landing). Its own pool, not ``fhir:<host>``: an export step holds its slot for the
  whole export (hours on Epic), and Epic allows one export per client and Group, so sharing one
  pool would leave REST syncs waiting for the export, or allow a second export when the REST
  limit is above one. The export's requests still share the server's rate limit.
- ``duckdb``: steps that only work inside the DuckDB file (one writer process per file): 1.

Dagster OSS keeps per-pool limits in the instance database, not in ``dagster.yaml``, so
``fhir-assets pools --apply`` writes them there (:func:`apply_limits`), through the instance's
event log storage methods that ``dagster instance concurrency get|set`` itself calls (no
``dagster._core`` import). Nothing here imports Dagster: the instance and definitions are
passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .fhir.profiles import ServerProfile

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

DUCKDB_POOL = "duckdb"
# One writer process per DuckDB file: a second one would only wait on the file lock.
DUCKDB_LIMIT = 1


def fhir_pool(base_url: str) -> str:
    """The pool of every step that talks to the FHIR server at ``base_url``: ``fhir:<host>``."""
    return f"fhir:{_host(base_url)}"


def bulk_pool(base_url: str) -> str:
    """The pool of the Bulk Data export step against ``base_url``: ``fhir-bulk:<host>``."""
    return f"fhir-bulk:{_host(base_url)}"


def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "unknown"


def default_limits(profile: ServerProfile, base_url: str) -> dict[str, int]:
    """Each pool's default limit for a ``profile`` server at ``base_url``."""
    return {
        fhir_pool(base_url): profile.concurrent_syncs,
        bulk_pool(base_url): profile.concurrent_exports,
        DUCKDB_POOL: DUCKDB_LIMIT,
    }


@dataclass(frozen=True, slots=True)
class PoolLimit:
    """One pool's default (from the profile) and its limit in the Dagster instance.

    Attributes:
        current: the instance's limit, ``None`` when the pool is unlimited.
        explicit: the limit was set for this pool (CLI, UI, an earlier ``--apply``), not taken
            from ``concurrency.pools.default_limit``.
    """

    pool: str
    default: int | None
    current: int | None
    explicit: bool

    def target(self, force: bool = False) -> int | None:
        """The limit ``--apply`` sets, or ``None`` to leave the pool as it is: a limit someone set
        is kept (even a lower or higher one) unless ``force``."""
        if self.default is None or (self.explicit and not force):
            return None
        if self.explicit and self.current == self.default:
            return None
        return self.default


def declared_pools(defs: Definitions) -> list[str]:
    """Every pool a step of ``defs`` declares (assets, checks and op jobs alike)."""
    return sorted({pool for job in defs.resolve_all_job_defs() for pool in job.graph.pools})


def read_limits(
    instance: DagsterInstance, pools: Iterable[str], defaults: Mapping[str, int | None]
) -> list[PoolLimit]:
    """Each of ``pools`` with its default and the limit the instance holds for it now."""
    storage = instance.event_log_storage
    keys = storage.get_concurrency_keys()
    limits = []
    for pool in pools:
        info = storage.get_concurrency_info(pool)
        explicit = pool in keys and not info.using_default_limit
        limits.append(PoolLimit(pool, defaults.get(pool), info.limit, explicit))
    return limits


def apply_limits(
    instance: DagsterInstance, limits: Iterable[PoolLimit], force: bool = False
) -> dict[str, int]:
    """Set each pool's default limit in the instance where :meth:`PoolLimit.target` says so.

    Returns: the pools set, with their new limits.
    """
    storage = instance.event_log_storage
    changed = {}
    for limit in limits:
        target = limit.target(force)
        if target is not None:
            storage.set_concurrency_slots(limit.pool, target)
            changed[limit.pool] = target
    return changed
