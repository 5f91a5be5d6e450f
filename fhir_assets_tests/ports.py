"""Ports for servers a test starts in another process, which binds them seconds later.

``bind(("127.0.0.1", 0))`` hands out ports from the kernel's ephemeral range, and so does every
server and client socket of the other xdist workers: a port found free, released, and bound by a
slow-starting child (``dagster dev``, PostgreSQL) a few seconds later can be taken in between.
These ports come from just below that range, which the kernel never hands out by itself.
"""

from __future__ import annotations

import random
from pathlib import Path

from fhir_assets.sandbox.server import port_is_free

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
SPAN = 10_000  # ports below the ephemeral range to choose from
_given: set[int] = set()  # never the same port twice in one process


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux), 32768 where it cannot be read."""
    try:
        return int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def unshared_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, outside the range other sockets get."""
    high = ephemeral_low()
    low = max(1024, high - SPAN)
    chooser = random.SystemRandom()
    for _ in range(200):
        port = chooser.randrange(low, high)
        if port not in _given and port_is_free(port):
            _given.add(port)
            return port
    raise RuntimeError(f"no free port found in {low}-{high - 1}")
