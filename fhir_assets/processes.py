"""Stopping a child process together with its children."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def stop_group(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Stop ``process`` and every process of its group (it must have been started with
    ``start_new_session=True``): SIGTERM, then SIGKILL if the leader still runs after
    ``timeout`` seconds. The group is signalled even if the leader has exited, so children it
    left behind (a server it started) stop too."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:  # the whole group is gone already
        process.wait()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
