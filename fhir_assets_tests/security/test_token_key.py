"""Issue 23 finding 7: a ``FHIR_TOKEN_KEY`` passphrase becomes a key through salted scrypt,
not one unsalted SHA-256; stores written with the old key open once and are re-encrypted."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fhir_assets.fhir.settings import ServerSettings, token_store
from fhir_assets.fhir.tokens import Token

PASSPHRASE = "correct horse battery staple"
SERVER = "https://ehr.example.org/fhir"


def settings(folder: Path) -> ServerSettings:
    return ServerSettings(SERVER, client_id="app", token_dir=str(folder), token_key=PASSPHRASE)


def sha256_key(passphrase: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest())


def test_passphrase_key_is_salted_scrypt(tmp_path: Path) -> None:
    store = token_store(settings(tmp_path / "a"))
    path = store.save(SERVER, "app", Token("at", expires_at=1e12, refresh_token="rt"))
    data = path.read_bytes()
    salt = (tmp_path / "a" / ".kdf-salt").read_bytes()
    assert len(salt) == 16
    # not the unsalted SHA-256 of the passphrase
    try:
        Fernet(sha256_key(PASSPHRASE)).decrypt(data)
        raise AssertionError("the store opens with sha256(passphrase)")
    except InvalidToken:
        pass
    expected = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(PASSPHRASE.encode())
    assert (
        json.loads(Fernet(base64.urlsafe_b64encode(expected)).decrypt(data))["refresh_token"]
        == "rt"
    )
    # another folder: another salt, another key
    other = token_store(settings(tmp_path / "b"))
    assert other.key != store.key


def test_a_store_written_with_the_old_key_migrates(tmp_path: Path) -> None:
    store = token_store(settings(tmp_path))
    path = store.path(SERVER, "app")
    path.parent.mkdir(parents=True, exist_ok=True)
    old = {"server": SERVER, "client_id": "app", "access_token": "at", "refresh_token": "rt",
           "expires_at": 1e12, "issued_at": 0, "scope": ""}  # fmt: skip
    path.write_bytes(Fernet(sha256_key(PASSPHRASE)).encrypt(json.dumps(old).encode()))
    token = token_store(settings(tmp_path)).load(SERVER, "app")
    assert token is not None and token.refresh_token == "rt"
    try:  # re-encrypted: the old key no longer opens it
        Fernet(sha256_key(PASSPHRASE)).decrypt(path.read_bytes())
        raise AssertionError("still under the unsalted key")
    except InvalidToken:
        pass
    assert token_store(settings(tmp_path)).load(SERVER, "app") == token
