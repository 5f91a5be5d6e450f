"""The resume state of one export: a small JSON file in its output folder.

It records the kick-off request, the status URL, the manifest once ready and every file already
downloaded (bytes, lines, bad lines), so a crashed run resumes without a second kick-off. It is
rewritten atomically (temporary file, fsync, rename) after each step; a finished file is only
appended to a journal beside it (``export-state.journal``, one JSON line, O(1) per file: a
100,000-file manifest costs linear time), folded into the state file at the next full save.
A journal line cut by a crash is ignored on load (that file is downloaded again).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..names import UnsafeNameError, check_resource_type, shown
from .manifest import KINDS, ExportJob, ExportRequest, Manifest, OutputFile

STATE_FILE = "export-state.json"
JOURNAL_FILE = "export-state.journal"


@dataclass(frozen=True, slots=True)
class FileDone:
    """A downloaded and checked file. ``bad`` holds ``(line, reason)`` per unusable line."""

    name: str
    type: str
    kind: str
    bytes: int
    lines: int
    bad: tuple[tuple[int, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "bytes": self.bytes,
            "lines": self.lines,
            "bad": [list(b) for b in self.bad],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileDone:
        bad = tuple((int(line), str(reason)) for line, reason in data.get("bad") or ())
        return cls(data["name"], data["type"], data["kind"], data["bytes"], data["lines"], bad)


@dataclass
class ExportState:
    """Where one export stands. Thread-safe updates through :meth:`mark_done`."""

    folder: Path
    request: ExportRequest | None = None
    job: ExportJob | None = None
    manifest: Manifest | None = None
    done: dict[str, FileDone] = field(default_factory=dict)
    finished: bool = False
    job_deleted: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def path(self) -> Path:
        return self.folder / STATE_FILE

    @classmethod
    def load(cls, folder: Path) -> ExportState:
        """The state saved in ``folder``, or a fresh one if there is none."""
        path = folder / STATE_FILE
        if not path.exists():
            return cls(folder)
        data = orjson.loads(path.read_bytes())
        state = cls(
            folder,
            ExportRequest.from_json(data["request"]) if data.get("request") else None,
            ExportJob.from_json(data["job"]) if data.get("job") else None,
            Manifest.from_json(data["manifest"]) if data.get("manifest") else None,
            {d["name"]: FileDone.from_json(d) for d in data.get("done") or ()},
            bool(data.get("finished")),
            bool(data.get("job_deleted")),
        )
        for done in _journal(folder / JOURNAL_FILE):
            state.done[done.name] = done
        return state

    def save(self) -> None:
        """Write the state atomically."""
        with self._lock:
            self._write()

    def mark_done(self, done: FileDone) -> None:
        """Record a finished file: one line appended to the journal (flushed to disk)."""
        with self._lock:
            self.done[done.name] = done
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / JOURNAL_FILE).open("ab") as journal:
                journal.write(orjson.dumps(done.to_json()) + b"\n")
                journal.flush()
                os.fsync(journal.fileno())

    def _write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {
            "request": self.request.to_json() if self.request else None,
            "job": self.job.to_json() if self.job else None,
            "manifest": self.manifest.to_json() if self.manifest else None,
            "done": [d.to_json() for d in self.done.values()],
            "finished": self.finished,
            "job_deleted": self.job_deleted,
        }
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        # compacted: every journal line is in the state file now
        (self.folder / JOURNAL_FILE).unlink(missing_ok=True)


def _journal(path: Path) -> list[FileDone]:
    """The files a journal records; a line cut short by a crash is skipped."""
    if not path.exists():
        return []
    done = []
    for line in path.read_bytes().splitlines():
        try:
            done.append(FileDone.from_json(orjson.loads(line)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return done


def local_name(index: int, file: OutputFile) -> str:
    """Where file ``index`` of the manifest lands, relative to the export folder.

    Raises:
        UnsafeNameError: the file's type or kind could reach outside its folder.
    """
    if file.kind not in KINDS:
        raise UnsafeNameError(f"unknown manifest file kind {shown(file.kind)}", file.kind)
    resource_type = check_resource_type(file.type, source="the manifest")
    return f"{file.kind}/{index:05d}.{resource_type}.ndjson"


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, resolved, if it lies strictly inside ``folder`` (resolved too).

    Every path built from server input passes here before it is opened, created, replaced or
    deleted: ``..``, an absolute name or a symlink out of the folder is refused.

    Raises:
        UnsafeNameError: the path would lie outside ``folder`` (or be the folder itself).
    """
    root = folder.resolve()
    if "\x00" in name:
        raise UnsafeNameError(f"file name {shown(name)} holds a NUL byte", name)
    target = (root / name).resolve()
    if target == root or not target.is_relative_to(root):
        raise UnsafeNameError(
            f"file name {shown(name)} would lie outside the export folder {root}: refused", name
        )
    return target
