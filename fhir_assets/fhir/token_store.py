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
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import AuthError, ConfigurationError
from .keys import write_secret_file
from .tokens import Token

log = logging.getLogger(__name__)

KEY_ENV = "FHIR_TOKEN_KEY"
SALT_FILE = ".kdf-salt"
SALT_BYTES = 16
KEYRING_SERVICE = "fhir-assets"
KEYRING_USER = "token-key"
DEFAULT_DIR = Path("~/.fhir-assets/tokens")


def new_key() -> str:
    """A new random Fernet key (for ``FHIR_TOKEN_KEY``)."""
    return Fernet.generate_key().decode()


def fernet_key(secret: str, directory: Path | None = None) -> bytes:
    """A Fernet key from ``secret``: used as is if it is one; a passphrase goes through scrypt
    (RFC 7914; n=2**15, r=8, p=1: about 0.1 s and 32 MB per derivation) with the random salt
    kept in ``directory`` (created on first use).

    Raises:
        ConfigurationError: a passphrase without a directory for its salt.
    """
    raw = secret.strip().encode()
    if _is_fernet_key(raw):
        return raw
    if directory is None:
        raise ConfigurationError(f"a {KEY_ENV} passphrase needs the token folder for its salt")
    kdf = Scrypt(salt=_salt(directory), length=32, n=2**15, r=8, p=1)
    return base64.urlsafe_b64encode(kdf.derive(raw))


def legacy_keys(secret: str) -> tuple[bytes, ...]:
    """The keys earlier versions derived from a passphrase (one unsalted SHA-256), so stores
    written by them still open; :meth:`TokenStore.load` re-encrypts them with the new key."""
    raw = secret.strip().encode()
    return () if _is_fernet_key(raw) else (base64.urlsafe_b64encode(hashlib.sha256(raw).digest()),)


def _is_fernet_key(raw: bytes) -> bool:
    try:
        return len(base64.urlsafe_b64decode(raw)) == 32
    except ValueError:
        return False


def _salt(directory: Path) -> bytes:
    """The store's KDF salt: 16 random bytes in ``directory/.kdf-salt`` (mode 0600), created
    exclusively, so two processes starting at once agree on one salt."""
    path = directory.expanduser() / SALT_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process is writing it
            if len(salt := path.read_bytes()) >= SALT_BYTES:
                return salt[:SALT_BYTES]
            time.sleep(0.01)
        raise ConfigurationError(f"{path} is not a salt file: delete it and log in again") from None
    salt = os.urandom(SALT_BYTES)
    with os.fdopen(fd, "wb") as out:
        out.write(salt)
    return salt


def resolve_key(environ: Mapping[str, str]) -> bytes:
    """The storage key: ``FHIR_TOKEN_KEY`` from ``environ``, else the OS keyring.

    Raises:
        ConfigurationError: neither is available.
    """
    if environ.get(KEY_ENV):
        return fernet_key(environ[KEY_ENV], DEFAULT_DIR)
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
    legacy: tuple[bytes, ...] = field(default=(), repr=False)

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
        record = self._decrypt(path)
        token = Token(
            access_token=record["access_token"],
            expires_at=float(record["expires_at"]),
            scope=record.get("scope") or "",
            refresh_token=record.get("refresh_token"),
            issued_at=float(record.get("issued_at") or 0.0),
        )
        if record.get("_legacy"):
            self.save(server, client_id, token)  # migrated: now under the salted key
            log.info("re-encrypted the stored tokens in %s with the salted %s key", path, KEY_ENV)
        return token

    def _decrypt(self, path: Path) -> dict[str, Any]:
        data = path.read_bytes()
        for number, key in enumerate((self.key, *self.legacy)):
            try:
                record: dict[str, Any] = json.loads(Fernet(key).decrypt(data))
            except (InvalidToken, ValueError):
                continue
            return record | {"_legacy": number > 0}
        raise AuthError(
            f"the stored tokens in {path} cannot be decrypted with this {KEY_ENV} (changed "
            f"key or altered file): run `fhir-assets auth login` again"
        )

    def delete(self, server: str, client_id: str) -> None:
        """Forget the stored tokens of one server and client."""
        self.path(server, client_id).unlink(missing_ok=True)
