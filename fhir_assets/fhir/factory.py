"""The one factory of FHIR clients: :func:`build_client` (also :func:`connect`).

Every path (raw sync, the bulk asset, the export sensor, write-back, ``fhir-assets
sync``/``export``, and new operations) builds its server's client here, from
:class:`~fhir_assets.fhir.settings.ServerSettings`, with the vendor profile applied before the
client is returned; the Dagster resource's ``get_client()`` calls it.
"""

from __future__ import annotations

import logging
from typing import Any

from .auth import BearerAuth
from .client import FhirClient
from .errors import FhirError, RequestError
from .profiles import detect_profile, get_profile
from .ratelimit import RateLimit, shared_rate_file
from .settings import ServerSettings, token_source
from .urls import require_https

log = logging.getLogger(__name__)


def build_client(settings: ServerSettings) -> FhirClient:
    """The one way to build a server's client, used by every path (searches, Bulk Data, write-back,
    the CLI): auth, timeout, retry policy and limits from ``settings``, and the vendor profile
    (its headers, its rate limit, its export level) applied before the client is returned;
    nothing changes it afterwards.

    Raises:
        ConfigurationError: a bad URL, unknown profile or missing credential.
    """
    require_https(settings.base_url, "FHIR base URL")  # before any token request
    tokens = token_source(settings)
    auth = BearerAuth(tokens, settings.base_url) if tokens is not None else None
    client = FhirClient(
        settings.base_url,
        auth=auth,
        timeout=settings.timeout_s,
        retry=settings.retry,
        headers=settings.headers,
        limits=settings.limits,
    )
    try:
        _apply_profile(client, settings)
    except BaseException:
        client.close()
        raise
    return client


def _apply_profile(client: FhirClient, settings: ServerSettings) -> None:
    """Resolve the profile (configured, else detected; ``generic`` if ``/metadata`` cannot
    say) and apply its headers and rate limit, shared by this machine's processes through a
    file or, with ``rate_limit_postgres``, by every machine through a table."""
    if settings.server_profile:
        profile = get_profile(settings.server_profile)
    else:
        try:
            profile = detect_profile(_capabilities(client))
        except FhirError as exc:
            log.warning("could not detect the server's profile (%s): using generic; set "
                        "FHIR_SERVER_PROFILE", type(exc).__name__)  # fmt: skip
            profile = get_profile("generic")
    client.profile = profile
    if profile.client_id_header and settings.client_id:
        client.session.headers[profile.client_id_header] = settings.client_id
    rate = settings.requests_per_s or profile.requests_per_s
    dsn = settings.rate_limit_postgres
    if dsn:
        from .ratelimit_postgres import shared_rate_table  # psycopg only where it is used

        limit = RateLimit(rate, postgres=shared_rate_table(settings.base_url, dsn))
    else:
        limit = RateLimit(rate, shared_file=shared_rate_file(settings.base_url))
    client.use_rate_limit(limit)


def _capabilities(client: FhirClient) -> dict[str, Any]:
    """``/metadata`` without a token (the spec has it public: no token is fetched just to build
    a client), with the token only if the server protects it (401/403)."""
    try:
        return client.get("metadata", auth=_no_token)
    except RequestError as exc:
        if exc.status not in (401, 403):
            raise
    return client.capabilities()


def _no_token(request: Any) -> Any:
    request.headers.pop("Authorization", None)
    return request


# The first name of the factory, kept for callers (and docs) that use it.
connect = build_client
