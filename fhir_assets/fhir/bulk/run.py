"""One export from kick-off to files on disk, resumable from its state file.

``run_export`` is what the CLI and the Dagster landing run call: it kicks off (only if the folder
holds no export yet), waits for the manifest, downloads what is missing, reads the error files and
DELETEs the job. Run it again on the same folder after a crash and it carries on where it stopped.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import ndjson
from ..client import redact
from ..errors import ConfigurationError
from ..names import UnsafeNameError
from .download import download_all
from .export import BulkClient, Pending
from .manifest import ExportError, ExportGoneError, ExportRequest, Manifest
from .state import ExportState, FileDone, local_name

log = logging.getLogger(__name__)

FATAL_SEVERITIES = frozenset({"fatal", "error"})
KINDS = ("output", "error", "deleted")  # the folders download.py writes below an export folder


@dataclass(frozen=True, slots=True)
class Progress:
    """A step of a running export, for progress displays (no resource content)."""

    phase: str  # kickoff | resume | waiting | manifest | file | done
    message: str
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A finished export on disk.

    Attributes:
        folder: the export folder (files under ``output/``, ``error/``, ``deleted/``).
        manifest: the server's manifest; ``transaction_time`` is the next ``_since``.
        files: every downloaded file.
        fatal: error-file issues of severity fatal/error (``code: text``, line).
        warnings: error-file issues of severity warning/information.
    """

    folder: Path
    manifest: Manifest
    files: tuple[FileDone, ...]
    fatal: tuple[str, ...]
    warnings: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """Lines per resource type in the output files."""
        totals: Counter[str] = Counter()
        for f in self.files:
            if f.kind == "output":
                totals[f.type] += f.lines
        return dict(totals)

    def bad_lines(self) -> list[tuple[str, int, str]]:
        """``(file, line, reason)`` per line that could not be used (kept in the file)."""
        return [(f.name, line, reason) for f in self.files for line, reason in f.bad]

    def output_files(self) -> list[tuple[str, Path]]:
        """``(resource type, path)`` per output file, for landing."""
        return [(f.type, self.folder / f.name) for f in self.files if f.kind == "output"]

    def deleted_files(self) -> list[Path]:
        """The ``deleted`` files (Bundles of DELETE requests): read with ``ndjson.tombstones``."""
        return [self.folder / f.name for f in self.files if f.kind == "deleted"]


def prepare(folder: Path, request: ExportRequest) -> ExportState:
    """Load the folder's state, refusing a folder that holds a different export.

    Raises:
        ConfigurationError: the folder belongs to another export request.
    """
    state = ExportState.load(folder)
    if state.request is not None and state.request != request:
        raise ConfigurationError(
            f"{folder} holds a different export ({state.request.level}, types "
            f"{','.join(state.request.types) or 'all'}); use another folder or delete it"
        )
    state.request = request
    return state


def run_export(
    bulk: BulkClient,
    request: ExportRequest,
    folder: Path,
    on_progress: Callable[[Progress], None] | None = None,
) -> ExportResult:
    """Run (or resume) the export of ``request`` into ``folder``.

    Raises:
        ExportError: the server refused or failed the export, or a file could not be fetched;
            the state is kept, so running again resumes (a failed job is DELETEd first).
        ConfigurationError: ``folder`` holds another export.
    """
    report = on_progress or (lambda _: None)
    state = prepare(folder, request)
    if state.finished:
        report(Progress("done", f"{folder} already holds this finished export"))
        return result(state)
    if state.job is None:
        report(Progress("kickoff", f"kicking off a {request.level}-level export"))
        state.job = bulk.kick_off(request)
        state.save()
    else:
        report(Progress("resume", f"resuming the export at {redact(state.job.status_url)}"))
    job = state.job
    if state.manifest is None:
        try:
            # any R4/R4B type lands, asked for or not (fhir.names): a server exports what it has
            state.manifest = bulk.wait(job, lambda p: report(_waiting(p)))
        except (ExportError, UnsafeNameError):
            _forget_job(bulk, state)
            raise
        state.save()
    files = state.manifest.files
    report(Progress("manifest", f"{len(files)} files to download", len(state.done), len(files)))

    total = [sum(d.bytes for d in state.done.values())]  # a running sum: O(1) per file

    def file_done(done: FileDone) -> None:
        total[0] += done.bytes
        message = f"{done.name}: {done.lines} lines"
        report(Progress("file", message, len(state.done), len(files), total[0]))

    try:
        download_all(bulk, state, file_done)
    except ExportGoneError:
        _forget_job(bulk, state)  # the files are gone: the next run has to kick off anew
        raise
    state.finished = True
    state.save()
    state.job_deleted = bulk.delete(job)
    state.save()
    finished = result(state)
    report(Progress("done", f"{sum(finished.counts().values())} resources", len(files), len(files)))
    return finished


def cancel_export(bulk: BulkClient, folder: Path) -> bool:
    """DELETE the export job recorded in ``folder`` (cancel it); returns whether there was one."""
    state = ExportState.load(folder)
    if state.job is None or state.job_deleted:
        return False
    _forget_job(bulk, state)
    return True


def _forget_job(bulk: BulkClient, state: ExportState) -> None:
    """DELETE a failed or cancelled job and drop it from the state (the next run kicks off anew)."""
    if state.job is not None:
        bulk.delete(state.job)
    state.job, state.manifest, state.job_deleted = None, None, False
    state.done.clear()
    state.save()
    for kind in KINDS:  # a new export's files must not resume from this one's parts
        shutil.rmtree(state.folder / kind, ignore_errors=True)


def _waiting(pending: Pending) -> Progress:
    why = f"HTTP {pending.status}" if pending.status not in (202, None) else "in progress"
    progress = f" ({pending.progress})" if pending.progress else ""
    return Progress("waiting", f"export {why}{progress}; next poll in {pending.wait_s:.0f}s")


def result(state: ExportState) -> ExportResult:
    """The :class:`ExportResult` of a finished state, with the error files' issues read."""
    if state.manifest is None:
        raise ExportError("the export has no manifest yet")
    fatal: list[str] = []
    warnings: list[str] = []
    for done in sorted(state.done.values(), key=lambda d: d.name):
        if done.kind != "error":
            continue
        for severity, text, line in ndjson.outcome_issues(state.folder / done.name):
            (fatal if severity in FATAL_SEVERITIES else warnings).append(
                f"{severity} {text} ({done.name}:{line})"
            )
    warnings.extend(_count_mismatches(state))
    for text in fatal:
        log.warning("export error file: %s", text)
    files = tuple(sorted(state.done.values(), key=lambda d: d.name))
    return ExportResult(state.folder, state.manifest, files, tuple(fatal), tuple(warnings))


def _count_mismatches(state: ExportState) -> list[str]:
    """A warning per error or deleted file whose line count differs from the manifest's
    ``count`` (``download.check`` holds only output files to their counts)."""
    manifest = state.manifest
    mismatches = []
    for index, file in enumerate(manifest.files if manifest else ()):
        done = state.done.get(local_name(index, file))
        if file.kind != "output" and done and file.count is not None and done.lines != file.count:
            mismatches.append(
                f"{file.kind} file {done.name}: {done.lines} lines, the manifest says {file.count}"
            )
    return mismatches
