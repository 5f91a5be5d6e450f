"""Dagster resources: configuration plus a factory for a pure client. No business logic here."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from .fhir import FhirClient, ServerSettings, connect


class FhirServerResource(dg.ConfigurableResource):  # type: ignore[misc]
    """One FHIR server and how to authenticate with it (SMART Backend Services)."""

    base_url: str = Field(description="FHIR base URL (FHIR_BASE_URL)")
    client_id: str | None = Field(default=None, description="SMART client id (FHIR_CLIENT_ID)")
    private_key_path: str | None = Field(
        default=None, description="Backend Services private key, PEM or JWK (FHIR_PRIVATE_KEY_PATH)"
    )
    scopes: str = Field(default="system/*.read", description="scopes to request (FHIR_SCOPES)")
    token_url: str | None = Field(default=None, description="token endpoint; discovered if unset")
    page_size: int = Field(default=500, description="_count sent with searches")
    timeout_s: float = Field(default=60.0, description="seconds per connect/read")
    server_profile: str | None = Field(
        default=None, description="vendor profile (FHIR_SERVER_PROFILE); detected if unset"
    )
    patient_group: str | None = Field(
        default=None, description="Group id listing the patients to sync per patient (Epic)"
    )
    requests_per_s: float | None = Field(
        default=None, description="client-side rate limit; the profile's default if unset"
    )
    workers: int | None = Field(default=None, description="parallel searches per asset")

    def settings(self) -> ServerSettings:
        """The pure client-library settings this resource describes."""
        return ServerSettings(
            base_url=self.base_url,
            client_id=self.client_id,
            private_key=self.private_key_path,
            scopes=self.scopes,
            token_url=self.token_url,
            timeout_s=self.timeout_s,
        )

    def get_client(self) -> FhirClient:
        """A connected client; close it when done (it is a context manager)."""
        return connect(self.settings())
