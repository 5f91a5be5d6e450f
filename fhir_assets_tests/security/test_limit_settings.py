"""The bounds are settings: ``FHIR_*`` variables with the defaults of ``Limits``, reaching the
client from the environment and from the Dagster resource (whose config turns ints to floats)."""

from __future__ import annotations

from fhir_assets.fhir.limits import Limits
from fhir_assets.resources import FhirServerResource
from fhir_assets.settings import LimitSettings, Settings


def test_limit_settings_defaults_are_the_clients() -> None:
    assert Limits(**LimitSettings().as_dict()) == Limits()


def test_limits_reach_server_settings_from_the_environment() -> None:
    env = {"FHIR_BASE_URL": "https://ehr.example/fhir", "FHIR_MAX_REDIRECTS": "2",
           "FHIR_MAX_FILE_BYTES": "1000", "FHIR_DOWNLOAD_DEADLINE_S": "9.5"}  # fmt: skip
    limits = Settings.from_environ(env).fhir.server().limits
    assert (limits.max_redirects, limits.max_file_bytes, limits.download_deadline_s) == (
        2,
        1000,
        9.5,
    )


def test_limits_reach_server_settings_from_the_resource() -> None:
    resource = FhirServerResource(base_url="https://ehr.example/fhir",
                                  limits={"max_redirects": 3.0, "max_pages": 7})  # fmt: skip
    limits = resource.settings().limits
    assert limits.max_redirects == 3 and isinstance(limits.max_redirects, int)
    assert limits.max_pages == 7
