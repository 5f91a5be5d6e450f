"""Pool names and their default limits from the server profile (``fhir_assets.pools``)."""

from __future__ import annotations

import pytest

from fhir_assets.fhir.profiles import PROFILES, get_profile
from fhir_assets.pools import PoolLimit, bulk_pool, default_limits, fhir_pool

URL = "https://fhir.epic.example.org/api/FHIR/R4"


def test_pools_are_named_by_the_servers_host() -> None:
    assert fhir_pool(URL) == "fhir:fhir.epic.example.org"
    assert bulk_pool(URL) == "fhir-bulk:fhir.epic.example.org"


@pytest.mark.parametrize(
    ("profile", "syncs", "exports"),
    [("epic", 1, 1), ("oracle", 2, 1), ("hapi", 4, 1), ("sekmet", 2, 1), ("generic", 2, 1)],
)
def test_default_limits_follow_the_profile(profile: str, syncs: int, exports: int) -> None:
    assert default_limits(get_profile(profile), URL) == {
        "fhir:fhir.epic.example.org": syncs,
        "fhir-bulk:fhir.epic.example.org": exports,
        "duckdb": 1,
    }


def test_every_profile_allows_at_least_one_step() -> None:
    assert all(p.concurrent_syncs >= 1 and p.concurrent_exports >= 1 for p in PROFILES.values())


@pytest.mark.parametrize(
    ("limit", "force", "target"),
    [
        (PoolLimit("fhir:h", 2, None, explicit=False), False, 2),  # unlimited: set
        (PoolLimit("fhir:h", 2, 1, explicit=False), False, 2),  # dagster.yaml default_limit: set
        (PoolLimit("fhir:h", 2, 5, explicit=True), False, None),  # set by hand: kept
        (PoolLimit("fhir:h", 2, 1, explicit=True), False, None),  # lower by hand: kept too
        (PoolLimit("fhir:h", 2, 5, explicit=True), True, 2),  # --force resets it
        (PoolLimit("fhir:h", 2, 2, explicit=True), True, None),  # already the default
        (PoolLimit("other", None, None, explicit=False), True, None),  # no profile default
    ],
)
def test_apply_sets_only_pools_without_a_limit_of_their_own(
    limit: PoolLimit, force: bool, target: int | None
) -> None:
    assert limit.target(force) == target


def test_pool_names_and_limits_import_no_dagster() -> None:
    """The Dagster-free commands can name pools; only ``fhir-assets pools`` opens Dagster."""
    import subprocess
    import sys

    code = "import sys, fhir_assets.pools, fhir_assets.cli; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
