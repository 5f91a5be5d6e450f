"""SMART scopes: parse v1 (``system/Observation.read``) and v2 (``system/Observation.rs``, granular
``?category=...``) scopes, compute the minimal set a run needs, and check a grant before any data
is pulled (SMART App Launch 2.x, "Scopes and Launch Context").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import AuthError

CONTEXTS = ("system", "user", "patient")
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
V2_ORDER = "cruds"


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope: ``context/Type.permissions[?query]``.

    Attributes:
        context: ``system``, ``user`` or ``patient``.
        resource_type: a FHIR type or ``*``.
        permissions: the v2 letters it grants (v1 ``read`` is ``rs``).
        query: the granular-scope query (v2, e.g. ``category=laboratory``), or ``""``.
        version: 1 or 2, as written.
    """

    context: str
    resource_type: str
    permissions: frozenset[str]
    query: str = ""
    version: int = 2

    def covers(self, resource_type: str, permissions: str = "rs") -> bool:
        """Whether this scope grants ``permissions`` on every resource of ``resource_type``.

        A granular scope (``?category=...``) covers only part of the type, so it does not count.
        """
        return (
            self.resource_type in ("*", resource_type)
            and set(permissions) <= self.permissions
            and not self.query
        )


def is_v2(scope: str) -> bool:
    """Whether ``scope`` is written in SMART v2 form (``.rs``, ``.cruds``...)."""
    parsed = parse_scope(scope)
    return parsed is not None and parsed.version == 2


def parse_scope(text: str) -> Scope | None:
    """Parse one resource scope; ``None`` for others (``launch``, ``openid``, ``offline_access``).

    A scope that looks like a resource scope but is malformed (``system/Patient.rw``) is also
    ``None``: it grants nothing we can rely on.
    """
    context, slash, rest = text.partition("/")
    if not slash or context not in CONTEXTS or "." not in rest:
        return None
    resource_type, _, permission_part = rest.partition(".")
    permission, _, query = permission_part.partition("?")
    if not resource_type or not (resource_type == "*" or resource_type[:1].isupper()):
        return None
    if permission in V1_PERMISSIONS and not query:
        return Scope(context, resource_type, frozenset(V1_PERMISSIONS[permission]), "", 1)
    # v2 letters must appear in c-r-u-d-s order, each at most once
    if permission and all(ch in V2_ORDER for ch in permission):
        if list(permission) == sorted(set(permission), key=V2_ORDER.index):
            return Scope(context, resource_type, frozenset(permission), query, 2)
    return None


def parse_scopes(text: str | Iterable[str]) -> list[Scope]:
    """Every resource scope in a space-separated string (or list), others skipped."""
    items = text.split() if isinstance(text, str) else list(text)
    return [s for s in (parse_scope(item) for item in items) if s is not None]


def read_scope(resource_type: str, *, v2: bool, context: str = "system") -> str:
    """The scope that lets a client read and search every ``resource_type`` resource."""
    return f"{context}/{resource_type}.{'rs' if v2 else 'read'}"


def minimal_scopes(
    resource_types: Iterable[str], *, v2: bool, context: str = "system", extra: Iterable[str] = ()
) -> str:
    """The least-privilege scope string for reading ``resource_types`` (no wildcard).

    Args:
        v2: write SMART v2 scopes (``.rs``) rather than v1 (``.read``).
        context: ``system`` (Backend Services) or ``user``/``patient`` (authorization code).
        extra: non-resource scopes to add (``offline_access`` for a refresh token).
    """
    wanted = sorted({read_scope(t, v2=v2, context=context) for t in resource_types})
    return " ".join([*wanted, *extra])


def missing_read_scope(granted: str | Iterable[str], resource_type: str) -> str | None:
    """``None`` if ``granted`` lets a client read all of ``resource_type``, else the scope to ask
    for (in the grant's own SMART version)."""
    scopes = parse_scopes(granted)
    if any(s.covers(resource_type) for s in scopes):
        return None
    v2 = any(s.version == 2 for s in scopes)
    context = scopes[0].context if scopes else "system"
    return read_scope(resource_type, v2=v2, context=context)


def require_read(granted: str | Iterable[str], resource_types: Iterable[str]) -> None:
    """Fail before any data is pulled if the grant does not cover every type.

    Raises:
        AuthError: names each missing scope and what was granted.
    """
    missing = [m for t in resource_types if (m := missing_read_scope(granted, t)) is not None]
    if missing:
        shown = granted if isinstance(granted, str) else " ".join(granted)
        raise AuthError(
            f"the access token does not allow reading everything needed: missing scope "
            f"{', '.join(missing)} (granted: {shown or 'nothing'}). Ask the server administrator "
            f"to grant it to this client, or drop the resource type from FHIR_RESOURCE_TYPES."
        )
