"""``Patient/$everything`` for a cohort against the sandbox, in DuckDB and the Snowflake emulator:
the asset lands per type exactly each patient's compartment; a rerun changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from fhir_assets.assets.defs import build_defs
from fhir_assets.assets.operations import COHORTS, EVERYTHING_KEY
from fhir_assets.catalog import CATALOG
from fhir_assets.fhir.client import parse_searchset, redact
from fhir_assets.sandbox import Sandbox
from fhir_assets.sandbox.demo import sandbox_settings
from fhir_assets.warehouse.settings import WarehouseSettings

from .conftest import materialization, rows


def compartments(sandbox: Sandbox, patient_ids: list[str]) -> dict[str, set[str]]:
    """What the server holds in the patients' compartments, per type (its own searches)."""
    found: dict[str, set[str]] = {"Patient": set(patient_ids)}
    with sandbox.fhir_client() as client:
        for spec in CATALOG:
            if spec.patient_compartment and spec.resource_type != "Patient":
                found[spec.resource_type] = set()
                for pid in patient_ids:
                    # one page: sekmet's compartment next links drop the compartment
                    bundle = client.get(f"Patient/{pid}/{spec.resource_type}", {"_count": 1000})
                    page = parse_searchset(bundle, spec.resource_type)
                    assert page.next_url is None and page.total == len(page.resources)
                    found[spec.resource_type] |= {r["id"] for r in page.resources}
    return found


def test_everything_lands_each_patients_compartment_and_a_rerun_changes_nothing(
    make_sandbox: Callable[..., Sandbox], warehouse: WarehouseSettings
) -> None:
    # a server of its own: its base URL (the rows' source_server) is this test's alone, and the
    # emulator may hold rows other tests of this process landed from the shared sandbox
    sandbox = make_sandbox()
    with sandbox.fhir_client() as client:
        patients = sorted(r["id"] for r in client.search("Patient"))[:3]
    key = "Patient/" + ",".join(patients)
    settings = sandbox_settings(sandbox, warehouse, FHIR_PARTITIONS="none")
    job = dg.define_asset_job("cohort", selection=[EVERYTHING_KEY])
    defs = dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(COHORTS.name, [key])
        runs = [
            defs.resolve_job_def("cohort").execute_in_process(instance=instance, partition_key=key)
            for _ in range(2)
        ]
    first, second = (materialization(run, EVERYTHING_KEY) for run in runs)
    server = redact(sandbox.base_url)
    expected = compartments(sandbox, patients)
    for resource_type, ids in expected.items():
        assert set(rows(warehouse, resource_type.lower(), server)) == ids, resource_type
    assert sum(len(ids) for ids in expected.values()) > 3 * 5  # a real record per patient
    assert first["patients"] == 3 and set(first["per_patient"]) == set(patients)
    assert first["per_patient"][patients[0]]["Patient"] == 1
    assert first["landed"] > 0 and first["quarantined"] == 0
    assert second["resources"] == first["resources"]
    assert (second["landed"], second["updated"]) == (0, 0)
    assert second["unchanged"] == second["resources"]
