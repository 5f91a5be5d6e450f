"""Bulk Data Access (HL7 FHIR Bulk Data IG v2) ``$export``: kick-off, polling, streamed download.

    from fhir_assets.fhir import ServerSettings, connect
    from fhir_assets.fhir.bulk import BulkClient, ExportRequest, run_export

    with connect(settings) as client, BulkClient(client) as bulk:
        result = run_export(bulk, ExportRequest("group", group_id="abc"), Path("export"))
        result.counts()  # lines per resource type; run again on the same folder to resume

Vendor behaviour is chosen by parameters, not by vendor name: Epic and Oracle Health allow only
group-level exports (``ExportRequest(level="group", group_id=...)``), Epic refuses a group
exported "too recently" (:class:`ExportTooSoonError`), Oracle Health wants one comma-joined
``_type`` (``BulkOptions.join_types``, the default) and sends multi-hour ``Retry-After``
(``BulkOptions.max_wait_s`` caps each wait, ``total_timeout_s`` bounds the whole export).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .answers import server_types
    from .download import download_all
    from .export import BulkClient, Pending
    from .manifest import (
        ExportError,
        ExportGoneError,
        ExportJob,
        ExportRequest,
        ExportTooSoonError,
        Manifest,
        OutputFile,
        format_instant,
    )
    from .options import BulkOptions
    from .run import ExportResult, Progress, cancel_export, run_export
    from .state import STATE_FILE, ExportState, FileDone

# Names are imported when first used (PEP 562): ``bulk.state`` alone (``fhir-assets land``
# of an export folder) does not import the HTTP client.
_HOMES = {
    "BulkClient": "export",
    "BulkOptions": "options",
    "ExportError": "manifest",
    "ExportGoneError": "manifest",
    "ExportJob": "manifest",
    "ExportRequest": "manifest",
    "ExportResult": "run",
    "ExportState": "state",
    "ExportTooSoonError": "manifest",
    "FileDone": "state",
    "Manifest": "manifest",
    "OutputFile": "manifest",
    "Pending": "export",
    "Progress": "run",
    "STATE_FILE": "state",
    "cancel_export": "run",
    "download_all": "download",
    "format_instant": "manifest",
    "run_export": "run",
    "server_types": "answers",
}


__getattr__ = lazy_attributes(__name__, _HOMES)

__all__ = [
    "STATE_FILE",
    "BulkClient",
    "BulkOptions",
    "ExportError",
    "ExportGoneError",
    "ExportJob",
    "ExportRequest",
    "ExportResult",
    "ExportState",
    "ExportTooSoonError",
    "FileDone",
    "Manifest",
    "OutputFile",
    "Pending",
    "Progress",
    "cancel_export",
    "download_all",
    "format_instant",
    "run_export",
    "server_types",
]
