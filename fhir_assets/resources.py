"""Dagster resources: configuration plus a factory for a pure client. No business logic here."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from .fhir import FhirClient, ServerSettings, build_client, check_read_access
from .settings import server_settings


class FhirServerResource(dg.ConfigurableResource):  # type: ignore[misc]
    """One FHIR server and how to authenticate with it (SMART Backend Services, client secret or
    a stored authorization-code login). Secret fields are hidden from ``repr``; pass them as
    ``dg.EnvVar`` so the Dagster UI shows only the variable's name."""

    base_url: str = Field(description="FHIR base URL (FHIR_BASE_URL)")
    client_id: str | None = Field(default=None, description="SMART client id (FHIR_CLIENT_ID)")
    private_key_path: str | None = Field(
        default=None, description="Backend Services private key, PEM or JWK (FHIR_PRIVATE_KEY_PATH)"
    )
    private_key: str | None = Field(
        default=None, repr=False, description="the private key's text (FHIR_PRIVATE_KEY)"
    )
    client_secret: str | None = Field(
        default=None, repr=False, description="client secret (FHIR_CLIENT_SECRET)"
    )
    auth_method: str | None = Field(
        default=None,
        description="backend-services | client-secret-basic | client-secret-post | "
        "authorization-code | none; inferred when unset (FHIR_AUTH_METHOD)",
    )
    scopes: str | None = Field(
        default=None, description="scopes to request; least set for resource_types if unset"
    )
    resource_types: list[str] = Field(
        default_factory=list, description="the types this deployment reads (for the scopes)"
    )
    token_url: str | None = Field(default=None, description="token endpoint; discovered if unset")
    jku: str | None = Field(default=None, description="URL of the client's JWKS (FHIR_JKU)")
    token_dir: str | None = Field(
        default=None, description="folder of the encrypted login tokens (FHIR_TOKEN_DIR)"
    )
    token_key: str | None = Field(
        default=None, repr=False, description="key of the stored tokens (FHIR_TOKEN_KEY)"
    )
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
    rate_limit_postgres: str | None = Field(
        default=None,
        repr=False,
        description="PostgreSQL DSN sharing the request budget across pods; unset: this "
        "machine's file (FHIR_RATE_LIMIT_POSTGRES)",
    )

    limits: dict[str, float] = Field(
        default_factory=dict,
        description="bounds and deadlines (FHIR_MAX_*, FHIR_*_DEADLINE_S) by field name of "
        "fhir_assets.fhir.limits.Limits; unset: their defaults",
    )

    def settings(self) -> ServerSettings:
        """The pure client-library settings this resource describes (the one mapping shared
        with the CLI: ``fhir_assets.settings.server_settings``)."""
        return server_settings(
            self, self.resource_types, limits=self.limits, timeout_s=self.timeout_s
        )

    def get_client(self) -> FhirClient:
        """The server's client, built once by ``build_client`` with its vendor profile applied
        (headers, rate limit, export level); close it when done (it is a context manager)."""
        return build_client(self.settings())

    def require_read(self, resource_type: str) -> None:
        """Fail fast, before any data is pulled, if the granted scopes cannot read the type."""
        check_read_access(self.settings(), [resource_type])
