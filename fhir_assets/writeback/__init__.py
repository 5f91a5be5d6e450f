"""Write-back: validated transaction bundles, idempotent conditional writes, conflicts, audit.

No Dagster here: :class:`Writer` is usable from a script; ``fhir_assets.assets.writeback`` wires it
into assets.
"""

from .audit import (
    AuditRecord,
    AuditWriter,
    DuckDBAuditWriter,
    SnowflakeAuditWriter,
    audit_writer,
    request_hash,
)
from .outcome import ResourceOutcome, summarize
from .policy import WritePolicy
from .scopes import granted_scope, permits_write
from .validate import validate_resource
from .writer import Writer

__all__ = [
    "AuditRecord",
    "AuditWriter",
    "DuckDBAuditWriter",
    "ResourceOutcome",
    "SnowflakeAuditWriter",
    "WritePolicy",
    "Writer",
    "audit_writer",
    "granted_scope",
    "permits_write",
    "request_hash",
    "summarize",
    "validate_resource",
]
