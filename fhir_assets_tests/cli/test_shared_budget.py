"""Two processes syncing one server stay inside its request budget together: the rate limit is
shared through a file by every process on the machine, counted here at a real proxy in front
of the sandbox (each request's arrival time, as the server would see it)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fhir_assets.sandbox import Sandbox
from fhir_assets_tests.proxy import Fault, FaultProxy

from .conftest import CLEARED, CLI

RATE = 3  # requests per second, for both processes together (27 searches: about 9 s)
# disjoint halves of the catalog, so each request at the proxy tells which process sent it
FIRST = "Patient,Encounter,Observation,Condition,MedicationRequest,Procedure"
SECOND = "AllergyIntolerance,Immunization,DiagnosticReport,DocumentReference,Coverage,Claim"


class CountingProxy(FaultProxy):
    """A proxy that notes when each request arrived and for which path (before forwarding).

    It also holds every ``/metadata`` request until ``starters`` of them arrived: each sync
    process reads the CapabilityStatement (unmetered) before its first search, so the processes
    start searching together however late a loaded machine started one of them.
    """

    def __init__(self, upstream_url: str, starters: int) -> None:
        super().__init__(upstream_url)
        self.arrivals: list[tuple[float, str]] = []
        self._arrivals_lock = threading.Lock()
        self._starters = starters
        self.started = threading.Event()

    def choose(self, method: str, path: str) -> Fault | None:
        with self._arrivals_lock:
            self.arrivals.append((time.monotonic(), path))
            if sum(p.endswith("/metadata") for _, p in self.arrivals) >= self._starters:
                self.started.set()
        if path.endswith("/metadata"):
            self.started.wait(120)  # a process that never comes: the overlap check says so
        return super().choose(method, path)


def searches(arrivals: list[tuple[float, str]], base_path: str, types: str) -> list[float]:
    """Arrival times of the searches of ``types`` (not the token or /metadata requests, which
    the rate limit does not meter)."""
    wanted = {f"{base_path}/{name}" for name in types.split(",")}
    return sorted(moment for moment, path in arrivals if path in wanted)


def busiest_second(moments: list[float]) -> int:
    return max(sum(1 for t in moments if start <= t < start + 1.0) for start in moments)


@pytest.mark.slow
def test_two_sync_processes_share_the_servers_request_budget(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with CountingProxy(sandbox.base_url, starters=2) as proxy:
        base = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
        env = (
            base
            | sandbox.environment()
            | {
                "FHIR_BASE_URL": proxy.url,
                "FHIR_TOKEN_URL": sandbox.token_url,  # an assertion's audience is the real endpoint
                "FHIR_REQUESTS_PER_S": str(RATE),
                "FHIR_SYNC_WORKERS": "4",  # each process could send faster than the budget alone
            }
        )
        processes = [
            subprocess.Popen(
                [CLI, "sync", "--type", types],
                env=env | {"FHIR_DUCKDB_PATH": str(tmp_path / f"w{n}.duckdb")},
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n, types in enumerate((FIRST, SECOND))
        ]
        outputs = [process.communicate(timeout=240) for process in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
    path = proxy.path
    first, second = searches(proxy.arrivals, path, FIRST), searches(proxy.arrivals, path, SECOND)
    both = sorted(first + second)
    # Both processes searched at the same time for at least two seconds, long enough that two
    # separate budgets would put 2 x RATE requests into one second. (Not a share of the run: on
    # a loaded machine one process may still search a little longer than the other.)
    overlap = min(first[-1], second[-1]) - max(first[0], second[0])
    assert overlap >= 2.0, (first, second)
    # Together they stay at the budget: no second at the server holds more than RATE requests
    # (+1 for the arrival-time jitter of a request sent at a window's edge), and the whole run
    # took at least as long as RATE per second allows.
    assert busiest_second(both) <= RATE + 1, both
    assert both[-1] - both[0] >= (len(both) - RATE) / RATE
