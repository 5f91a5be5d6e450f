"""``fhir-assets land`` of what real Bulk Data servers export: types outside the default catalog
(CarePlan, Goal, Device, Group, Provenance) and a ``deleted/`` Bundle that mixes types and starts
with a CarePlan deletion (as the SMART reference server writes it), on DuckDB and on the
Snowflake emulator. Resources carry no ``meta``, so a deletion of the same export must still win
(``sql`` rule 4)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from fhir_assets.cli import app
from fhir_assets.settings import load
from fhir_assets.warehouse.settings import WarehouseSettings, open_warehouse

TRANSACTION_TIME = "2026-11-26T10:00:00.000Z"
FILES = {  # file name -> (type, ids): the reference server's naming
    "00001.CarePlan.ndjson": ("CarePlan", ["c1", "c2", "c3"]),
    "00001.Goal.ndjson": ("Goal", ["g1", "g2"]),
    "00001.Device.ndjson": ("Device", ["d1"]),
    "00001.Group.ndjson": ("Group", ["grp1"]),
    "00001.Provenance.ndjson": ("Provenance", ["pv1", "pv2"]),
    "00001.Patient.ndjson": ("Patient", ["p1", "p2"]),
}
DELETED = [  # the first entry deletes a CarePlan that the same export holds without meta
    "CarePlan/c1", "Goal/g2", "Patient/p1", "Observation/o9", "Device/d1/_history/2",
    "NotAType/x1", "CarePlan/c9",
]  # fmt: skip
# type -> (live ids, tombstone ids) after landing
EXPECTED = {
    "CarePlan": ({"c2", "c3"}, {"c1", "c9"}),
    "Goal": ({"g1"}, {"g2"}),
    "Device": (set(), {"d1"}),
    "Group": ({"grp1"}, set()),
    "Provenance": ({"pv1", "pv2"}, set()),
    "Patient": ({"p2"}, {"p1"}),
    "Observation": (set(), {"o9"}),
}


def ndjson(*resources: dict) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def export_folder(root: Path) -> Path:
    for name, (kind, ids) in FILES.items():
        (root / name).write_bytes(ndjson(*({"resourceType": kind, "id": i} for i in ids)))
    (root / "deleted").mkdir()
    entries = [{"request": {"method": "DELETE", "url": url}} for url in DELETED]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    (root / "deleted" / "00001.Bundle.ndjson").write_bytes(ndjson(bundle))
    manifest = {"transactionTime": TRANSACTION_TIME, "request": "x", "output": []}
    (root / "manifest.json").write_bytes(orjson.dumps(manifest))
    return root


@contextmanager
def duckdb_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {"FHIR_WAREHOUSE": "duckdb", "FHIR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}


@contextmanager
def snowflake_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    from fhir_assets_tests.snowflake_emulator import (
        apply_bootstrap,
        emulator_environment,
        emulator_settings,
    )

    with emulator_settings(database="FHIR_ASSETS") as snowflake:
        apply_bootstrap(snowflake)
        yield emulator_environment(snowflake)


def stored(env: dict[str, str]) -> dict[str, tuple[set[str], set[str]]]:
    """type -> (live ids, tombstone ids) in the warehouse, and the quarantine's rows."""
    found = {}
    with open_warehouse(load(WarehouseSettings, env), landing=False) as warehouse:
        for kind in [*EXPECTED, "_quarantine"]:
            table = kind.lower()
            if kind == "_quarantine":
                query = "SELECT source, line, error FROM fhir_raw._quarantine"
                found[kind] = {tuple(r) for r in warehouse.fetch(query)}
                continue
            rows = warehouse.fetch(f"SELECT id, deleted FROM fhir_raw.{table}")  # noqa: S608
            found[kind] = ({i for i, d in rows if not d}, {i for i, d in rows if d})
    return found


@pytest.mark.parametrize("warehouse", [duckdb_env, snowflake_env], ids=["duckdb", "snowflake"])
def test_land_takes_every_r4_type_and_each_deleted_entry_on_its_own(
    tmp_path: Path, warehouse: object
) -> None:
    (tmp_path / "export").mkdir()
    folder = export_folder(tmp_path / "export")
    with warehouse(tmp_path) as env:  # type: ignore[operator]
        result = CliRunner().invoke(app, ["land", str(folder)], env=env)
        assert result.exit_code == 0, result.output
        found = stored(env)
        again = CliRunner().invoke(app, ["land", str(folder)], env=env)
        assert again.exit_code == 0, again.output
        assert stored(env) == found  # landing the same export again changes nothing
    assert {kind: found[kind] for kind in EXPECTED} == EXPECTED
    ((source, line, reason),) = found["_quarantine"]  # the NotAType entry, with its line
    assert (source, line) == ("deleted/00001.Bundle.ndjson", 1)
    assert "'NotAType', which is not an R4/R4B resource type name" in reason
    table = {row.split()[0]: row.split()[1:] for row in result.stdout.splitlines()[1:]}
    # seen, landed, updated, deleted, unchanged, quarantined
    assert table["CarePlan"] == ["5", "3", "0", "2", "0", "0"]
    assert table["Group"] == ["1", "1", "0", "0", "0", "0"]
    assert table["Bundle"] == ["1", "0", "0", "0", "0", "1"]
