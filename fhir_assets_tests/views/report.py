"""Print the SQL on FHIR v2 conformance pass counts per test file and dialect.

.venv/bin/python -m fhir_assets_tests.views.report
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from .conformance import (
    Case,
    canonical,
    cases,
    fakesnow_connection,
    run_duckdb,
    run_snowflake,
    suite_dir,
)


def passes(case: Case, run: Any) -> bool:
    """Whether the case behaves as the suite expects (rows, columns, or an error)."""
    try:
        names, rows = run()
    except Exception:
        return bool(case.test.get("expectError"))
    if case.test.get("expectError"):
        return False
    columns = case.test.get("expectColumns")
    return canonical(rows) == canonical(case.test["expect"]) and columns in (None, names)


def line(name: str, cases: object, duckdb: object, snowflake: object) -> str:
    return f"| {name:<18} | {cases:>5} | {duckdb:>6} | {snowflake:>20} |"


def main() -> int:
    if suite_dir() is None:
        print("the SQL on FHIR v2 suite is not here (../shared/conformance)")
        return 1
    totals: Counter[str] = Counter()
    per_file: dict[str, Counter[str]] = {}
    with fakesnow_connection() as connection:
        for number, case in enumerate(cases()):
            counts = per_file.setdefault(case.file, Counter())
            counts["cases"] += 1
            counts["duckdb"] += passes(case, lambda c=case: run_duckdb(c))
            snowflake_ok = passes(case, lambda c=case: run_snowflake(c, connection, f"r{number}"))
            counts["snowflake"] += snowflake_ok
    print(line("file", "cases", "duckdb", "snowflake (fakesnow)"))
    print("|--------------------|-------|--------|----------------------|")
    for name, counts in per_file.items():
        totals.update(counts)
        print(line(name, counts["cases"], counts["duckdb"], counts["snowflake"]))
    print(line("total", totals["cases"], totals["duckdb"], totals["snowflake"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
