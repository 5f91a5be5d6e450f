"""Keeping credentials out of messages: every form in which a secret can come back in a
server's echo, and :func:`scrub`, which replaces them (and anything shaped like a JWT or an
``Authorization`` value) by ``[redacted]``."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "client_secrets", "encodings", "scrub"]

REDACTED = "[redacted]"
# Shapes of credentials whatever their value: a JWT (three base64url parts, the first one a JSON
# object: "eyJ"), and the value of an Authorization header (Basic, Bearer).
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
AUTH_HEADER = re.compile(r"(?i)\b(basic|bearer)(\s+|%20|\+)[A-Za-z0-9+/=._~%\-]+")


def encodings(secret: str) -> set[str]:
    """The forms in which ``secret`` can come back: raw, URL-encoded (form or path style, either
    hex case), JSON-escaped, and base64 (standard or URL-safe, padded or not; Basic carries
    ``base64(id:secret)``, so pass ``id:secret`` too)."""
    forms = {secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in set(forms)}
    raw = secret.encode()
    for coded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms |= {coded.decode(), coded.decode().rstrip("=")}
    return {f for f in forms if f}


def client_secrets(client_id: str, secret: str | None) -> list[str]:
    """What of a client secret may come back: the secret, and the ``id:secret`` pairs that Basic
    carries base64-encoded (as authlib sends it, and form-encoded first per RFC 6749 2.3.1)."""
    if not secret:
        return []
    return [secret, f"{client_id}:{secret}", f"{quote_plus(client_id)}:{quote_plus(secret)}"]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every encoding of every secret, every JWT-shaped string and every
    Authorization header value replaced by ``[redacted]``. Scrub before cutting text short."""
    forms = sorted({f for s in secrets if s for f in encodings(s)}, key=len, reverse=True)
    for form in forms:
        text = text.replace(form, REDACTED)
    text = JWT_SHAPE.sub(REDACTED, text)
    return AUTH_HEADER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
