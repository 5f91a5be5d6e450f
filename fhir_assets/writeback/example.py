"""The write-back example: a per-patient score computed from landed data, as an Observation.

The score is the number of the patient's Observations interpreted as abnormal (HL7 v3
ObservationInterpretation high/low/critical/abnormal codes) in ``fhir_raw.observation``. Every
patient in ``fhir_raw.patient`` gets one, zero included, identified by the patient id under
:data:`SCORE_SYSTEM`, so a re-run updates the same Observation instead of adding one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..warehouse.sql import Dialect, json_rows, json_text

SCORE_SYSTEM = "urn:fhir-assets:writeback:abnormal-observation-count"
SCORE_SCHEMA = "fhir_writeback"
SCORE_TABLE = "patient_abnormal_count"
ABNORMAL_CODES = ("A", "AA", "H", "HH", "HU", "L", "LL", "LU", ">", "<")


def score_sql(d: Dialect, server: str) -> str:
    """The statement building the score table, in ``d``'s words, from the rows of ``server`` (a
    quoted SQL string literal of the redacted base URL).

    One row per live patient of that server; the raw tables hold the JSON exactly as the server
    sent it. Rows of other servers (e.g. earlier sandbox ports) are left out: their ids mean
    nothing on the server written back to. An Observation counts once however many of its
    codings match.
    """
    codes = ", ".join(d.literal(code) for code in ABNORMAL_CODES)
    return f"""
create or replace table {SCORE_SCHEMA}.{SCORE_TABLE} as
with matches as (
    select distinct o.id, {json_text(d, "o.resource", "subject.reference")} as subject
    from fhir_raw.observation o,
         {json_rows(d, "o.resource", "interpretation", "i")},
         {json_rows(d, "i.value", "coding", "c")}
    where not o.deleted and o.source_server = {server}
      and {json_text(d, "c.value", "code")} in ({codes})
),
abnormal as (select subject, count(*) as n from matches group by subject)
select p.id as patient_id, coalesce(a.n, 0)::integer as abnormal_count
from fhir_raw.patient p
left join abnormal a on a.subject = 'Patient/' || p.id
where not p.deleted and p.source_server = {server}
order by p.id
"""  # noqa: S608 (constants, and literals quoted by the dialect)


def abnormal_count_observation(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Observation written back for one row of the score table.

    Deterministic in the row (no timestamps), so an unchanged score is recognised as unchanged.
    """
    patient_id = str(row["patient_id"])
    return {
        "resourceType": "Observation",
        "identifier": [{"system": SCORE_SYSTEM, "value": patient_id}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "urn:fhir-assets:code", "code": "abnormal-observation-count"}],
            "text": "Number of observations interpreted as abnormal",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueInteger": int(row["abnormal_count"]),
    }
