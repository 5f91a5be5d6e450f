"""Does the access token allow writing? A small check, to be swapped for full SMART scope parsing.

SMART v1 scopes (``system/*.write``, ``system/Observation.*``) and v2 scopes
(``system/*.cu``, ``system/Observation.cruds``) are understood; write-back needs both create and
update on the resource type, because a run may do either.
"""

from __future__ import annotations

from ..fhir.auth import BearerAuth
from ..fhir.client import FhirClient

V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}


def permits_write(granted: str, resource_type: str) -> bool:
    """Whether the space-separated ``granted`` scopes allow create and update of the type."""
    for scope in granted.split():
        context, _, rest = scope.partition("/")
        scope_type, dot, permissions = rest.partition(".")
        if context != "system" or not dot:
            continue
        permissions = permissions.split("?", 1)[0]  # v2 scopes can carry a search filter
        letters = V1_PERMISSIONS.get(permissions, permissions)
        if scope_type in ("*", resource_type) and "c" in letters and "u" in letters:
            return True
    return False


def granted_scope(client: FhirClient) -> str | None:
    """The scopes the token endpoint granted this client (``None`` without SMART auth).

    The token is fetched (or taken from the cache) to read the ``scope`` of its response; when
    the server leaves it out, the requested scope was granted (RFC 6749 5.1). The token itself
    is not exposed.
    """
    auth = client.session.auth
    if not isinstance(auth, BearerAuth):
        return None
    return auth.tokens.token().scope or str(getattr(auth.tokens, "scope", ""))
