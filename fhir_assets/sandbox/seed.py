"""Deterministic synthetic FHIR R4 data for the sandbox.

``clinosim`` (PyPI) simulates a hospital population and writes Bulk Data NDJSON, one file per
resource type. It emits no Claim or ExplanationOfBenefit, so those are derived here, one pair per
finished Encounter whose patient has a Coverage: enough for the payer tables to be exercised.
Nor does it write Goal, CarePlan, QuestionnaireResponse, Provenance or Device: ``us_core``
derives a few per patient.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..fhir.client import FhirClient
from .us_core import derive_us_core

log = logging.getLogger(__name__)

# Fixed so the data is byte-for-byte reproducible; the simulation window ends here.
SIM_START, SIM_END = "2026-01-01", "2026-03-01"
TRANSACTION_SIZE = 500


def tool(name: str) -> str:
    """Path of a console script installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: pip install 'fhir-assets[sandbox]'")
    return found


def generate(out_dir: Path, *, population: int, seed: int) -> Path:
    """Write the synthetic data set as NDJSON files (``<Type>.ndjson``) into ``out_dir``.

    Args:
        population: clinosim's catchment population; about a third become patients
            (150 gives about 50 patients and 4,500 resources).
        seed: the random seed; the same seed always gives the same data.
    """
    work = out_dir / "clinosim"
    subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [
            tool("clinosim"),
            "simulate",
            "-o",
            str(work),
            "-p",
            str(population),
            "-s",
            str(seed),
            "--country",
            "US",
            "--start",
            SIM_START,
            "--end",
            SIM_END,
            "--format",
            "fhir-r4",
        ],
        check=True,
        capture_output=True,
    )
    ndjson = out_dir / "ndjson"
    shutil.move(str(work / "fhir_r4"), ndjson)
    shutil.rmtree(work)
    claims, eobs = derive_claims(ndjson)
    write_ndjson(ndjson / "Claim.ndjson", claims)
    write_ndjson(ndjson / "ExplanationOfBenefit.ndjson", eobs)
    for resource_type, resources in derive_us_core(ndjson).items():
        write_ndjson(ndjson / f"{resource_type}.ndjson", resources)
    from .questionnaires import write_questionnaires  # it reads this module's helpers

    write_questionnaires(ndjson)  # the QuestionnaireResponses, which $extract reads
    return ndjson


def read_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the resources of one NDJSON file."""
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)


def write_ndjson(path: Path, resources: list[dict[str, Any]]) -> None:
    """Write resources as NDJSON, one per line."""
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))


def derive_claims(ndjson: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One professional Claim and its adjudicated ExplanationOfBenefit per covered Encounter."""
    coverage = {}
    for cov in read_ndjson(ndjson / "Coverage.ndjson"):
        coverage.setdefault(cov["beneficiary"]["reference"], cov)
    claims, eobs = [], []
    for encounter in read_ndjson(ndjson / "Encounter.ndjson"):
        cov = coverage.get(encounter["subject"]["reference"])
        if encounter.get("status") != "finished" or cov is None:
            continue
        suffix = encounter["id"].removeprefix("enc-")
        claim, eob = claim_pair(encounter, cov, suffix)
        claims.append(claim)
        eobs.append(eob)
    return claims, eobs


def claim_pair(
    encounter: dict[str, Any], coverage: dict[str, Any], suffix: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the Claim and ExplanationOfBenefit for one encounter, deterministically."""
    start = encounter["period"]["start"]
    amount = 80 + int(suffix[:4], 16) % 900
    common = {
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": encounter["subject"],
        "billablePeriod": encounter["period"],
        "created": start,
        "provider": coverage["payor"][0],
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage['id']}"}}
        ],
    }
    item = {
        "sequence": 1,
        "encounter": [{"reference": f"Encounter/{encounter['id']}"}],
        "productOrService": {
            "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]
        },
        "net": {"value": amount, "currency": "USD"},
    }
    claim = {
        "resourceType": "Claim",
        "id": f"claim-{suffix}",
        **common,
        "priority": {"coding": [{"code": "normal"}]},
        "item": [item],
        "total": {"value": amount, "currency": "USD"},
    }
    paid = round(amount * 0.8, 2)
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "id": f"eob-{suffix}",
        **common,
        "insurer": coverage["payor"][0],
        "outcome": "complete",
        "claim": {"reference": f"Claim/claim-{suffix}"},
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{coverage['id']}"}}],
        "item": [
            {
                **item,
                "adjudication": [
                    {"category": {"coding": [{"code": "submitted"}]}, "amount": item["net"]},
                    {
                        "category": {"coding": [{"code": "benefit"}]},
                        "amount": {"value": paid, "currency": "USD"},
                    },
                ],
            }
        ],
        "total": [{"category": {"coding": [{"code": "submitted"}]}, "amount": item["net"]}],
        "payment": {"amount": {"value": paid, "currency": "USD"}},
    }
    return claim, eob


def load(client: FhirClient, ndjson: Path) -> dict[str, int]:
    """Load every NDJSON file into the server with transaction bundles of PUTs (ids kept).

    Returns:
        resources loaded per type.
    """
    counts: dict[str, int] = {}
    for path in sorted(ndjson.glob("*.ndjson")):
        batch: list[dict[str, Any]] = []
        counts[path.stem] = 0
        for resource in read_ndjson(path):
            batch.append(resource)
            counts[path.stem] += 1
            if len(batch) == TRANSACTION_SIZE:
                put_all(client, batch)
                batch = []
        if batch:
            put_all(client, batch)
    log.info("loaded %d resources of %d types", sum(counts.values()), len(counts))
    return counts


def put_all(client: FhirClient, resources: list[dict[str, Any]]) -> None:
    """PUT resources in one transaction, so their ids are the generator's ids."""
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources
    ]
    client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
