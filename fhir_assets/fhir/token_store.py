"""Tokens persisted between runs (the authorization-code flow's refresh token), encrypted at rest.

One file per server and client, mode 0600, encrypted with Fernet (AES-128-CBC + HMAC-SHA256). The
key comes from ``FHIR_TOKEN_KEY`` or, when the optional ``keyring`` package is installed, from the
OS keyring (created there on first use).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from .errors import AuthError, ConfigurationError
from .keys import write_secret_file
from .tokens import Token

log = logging.getLogger(__name__)

KEY_ENV = "FHIR_TOKEN_KEY"
KEYRING_SERVICE = "fhir-assets"
KEYRING_USER = "token-key"
DEFAULT_DIR = Path("~/.fhir-assets/tokens")


def new_key() -> str:
    """A new random Fernet key (for ``FHIR_TOKEN_KEY``)."""
    return Fernet.generate_key().decode()


def fernet_key(secret: str) -> bytes:
    """A Fernet key from ``secret``: used as is if it is one, else derived with SHA-256."""
    raw = secret.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def resolve_key(environ: Mapping[str, str]) -> bytes:
    """The storage key: ``FHIR_TOKEN_KEY`` from ``environ``, else the OS keyring.

    Raises:
        ConfigurationError: neither is available.
    """
    if environ.get(KEY_ENV):
        return fernet_key(environ[KEY_ENV])
    try:
        import keyring  # optional dependency
    except ImportError:
        raise ConfigurationError(
            f"stored tokens are encrypted: set {KEY_ENV} (make one with "
            f"`fhir-assets auth new-key`) or install the 'keyring' package"
        ) from None
    try:
        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        if not stored:
            stored = new_key()
            keyring.set_password(KEYRING_SERVICE, KEYRING_USER, stored)
    except keyring.errors.KeyringError as exc:
        raise ConfigurationError(
            f"the OS keyring is not usable ({type(exc).__name__}): set {KEY_ENV}"
        ) from None
    return fernet_key(stored)


@dataclass(frozen=True)
class TokenStore:
    """Encrypted token files in ``directory``, one per (server, client). ``repr`` hides the key."""

    directory: Path
    key: bytes = field(repr=False)

    def path(self, server: str, client_id: str) -> Path:
        """The file for one server and client (a hash: no URL in file names)."""
        digest = hashlib.sha256(f"{server.rstrip('/')}\n{client_id}".encode()).hexdigest()[:24]
        return self.directory.expanduser() / f"{digest}.token"

    def save(self, server: str, client_id: str, token: Token) -> Path:
        """Encrypt and write ``token`` (refresh token included), mode 0600."""
        path = self.path(server, client_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {
            "server": server,
            "client_id": client_id,
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": token.expires_at,
            "issued_at": token.issued_at,
            "scope": token.scope,
        }
        write_secret_file(path, Fernet(self.key).encrypt(json.dumps(record).encode()))
        log.info("stored tokens for client %s in %s", client_id, path)
        return path

    def load(self, server: str, client_id: str) -> Token | None:
        """The stored token, or ``None`` if there is none.

        Raises:
            AuthError: the file cannot be decrypted with this key (or was altered).
        """
        path = self.path(server, client_id)
        if not path.exists():
            return None
        try:
            record = json.loads(Fernet(self.key).decrypt(path.read_bytes()))
        except (InvalidToken, ValueError):
            raise AuthError(
                f"the stored tokens in {path} cannot be decrypted with this {KEY_ENV} (changed "
                f"key or altered file): run `fhir-assets auth login` again"
            ) from None
        return Token(
            access_token=record["access_token"],
            expires_at=float(record["expires_at"]),
            scope=record.get("scope") or "",
            refresh_token=record.get("refresh_token"),
            issued_at=float(record.get("issued_at") or 0.0),
        )

    def delete(self, server: str, client_id: str) -> None:
        """Forget the stored tokens of one server and client."""
        self.path(server, client_id).unlink(missing_ok=True)
