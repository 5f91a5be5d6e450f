"""Issue 23: one HTTP session factory and one retry loop. Outside the client module
(``fhir_assets/fhir/http.py`` for sessions, ``fhir_assets/fhir/retry.py`` for retries) no code
makes a ``requests`` session, sends through ``requests``' module functions (which follow
redirects unchecked) or writes a retry loop of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fhir_assets

PACKAGE = Path(fhir_assets.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))

SESSIONS = re.compile(r"requests\.(Session|get|post|put|patch|delete|head|request)\(|Session\(\)")
RETRY_LOOPS = re.compile(
    r"for \w+ in range\([^)]*(attempt|tries|retries)"
    r"|\b(attempt|attempts|failures|tries|transient)\s*\+=\s*1"
    r"|import tenacity|urllib3\.util\.retry|backoff_s \* 2"
)
SESSION_HOME = {"fhir/http.py"}
RETRY_HOME = {"fhir/retry.py"}
# The write-back transaction loop re-reads, re-plans and audits each round (conflicts and
# transient failures interleave); its waits are RetryPolicy.backoff (writeback/policy.py).
RETRY_EXCEPTIONS = {"writeback/writer.py"}


def offenders(pattern: re.Pattern[str], allowed: set[str]) -> list[str]:
    found = []
    for path in SOURCES:
        name = path.relative_to(PACKAGE).as_posix()
        if name in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("#")[0]):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def test_no_session_outside_the_client_module() -> None:
    assert offenders(SESSIONS, SESSION_HOME) == []


def test_no_retry_loop_outside_the_client_module() -> None:
    assert offenders(RETRY_LOOPS, RETRY_HOME | RETRY_EXCEPTIONS) == []


@pytest.mark.parametrize(
    "line",
    [
        "s = requests.Session()",
        "r = requests.get(url)",
        "for attempt in range(attempts + 1):",
        "failures += 1",
        "wait = min(retry.backoff_s * 2 ** n, cap)",
    ],
)
def test_the_patterns_catch_what_they_forbid(line: str) -> None:
    assert SESSIONS.search(line) or RETRY_LOOPS.search(line)
