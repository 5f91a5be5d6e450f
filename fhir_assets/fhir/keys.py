"""Private keys for SMART Backend Services: load (PEM, JWK, or the text itself), generate, publish.

All JOSE work is joserfc's. A key's ``kid`` is the JWK's own or its RFC 7638 thumbprint, so the
JWKS registered with the EHR and the ``kid`` header of every assertion always agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from .errors import ConfigurationError

Key = RSAKey | ECKey

# SMART Backend Services (SMART App Launch 2.x, "Authenticating with a JWT"): servers must support
# RS384 or ES384; these are the two we sign with.
ALGORITHMS = ("RS384", "ES384")


def algorithm_for(key: Key) -> str:
    """The signing algorithm SMART expects for this key type."""
    return "ES384" if isinstance(key, ECKey) else "RS384"


def load_private_key(source: str | Path, *, kid: str | None = None) -> Key:
    """Load an RSA or EC private key from a PEM or JWK (JSON) file, or from the text itself.

    Args:
        source: a file path, or the PEM/JWK text (for keys passed through an environment variable).
        kid: the key id to use in the assertion header; defaults to the JWK's ``kid`` or the
            RFC 7638 thumbprint.

    Raises:
        ConfigurationError: no file there, not a key, or a public key. The message never holds
            the key text.
    """
    text = str(source)
    if not text.lstrip().startswith(("-----BEGIN", "{")):
        looks_like_path = len(text) < 512 and "\n" not in text
        path = Path(text).expanduser()
        if not looks_like_path:  # key text in a format we don't read: never echo it
            raise ConfigurationError("the private key is neither a file path nor PEM/JWK text")
        if not path.is_file():
            raise ConfigurationError(f"private key file not found: {path}")
        text = path.read_text()
    parsed = _parse_jwk(text.strip())
    for key_type in (RSAKey, ECKey):
        try:
            key = key_type.import_key(parsed)
        except (ValueError, TypeError, JoseError):
            continue
        if not key.is_private:
            raise ConfigurationError(
                "the key is a public key; Backend Services needs the private key"
            )
        if kid:
            return key_type.import_key(key.as_dict(private=True) | {"kid": kid})
        if not key.kid:
            key.ensure_kid()
        return key
    # `from None`: the parser's exception can quote the key material.
    raise ConfigurationError("could not read an RSA or EC private key (PEM or JWK)") from None


def _parse_jwk(text: str) -> str | dict[str, Any]:
    """A JWK's JSON as a dict (joserfc imports JWKs from dicts); a JWKS with a single key is
    accepted too (what ``sekmet keys generate`` and some tools write). PEM text is returned as is.
    """
    if not text.startswith("{"):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigurationError("the private key is not valid JSON (JWK)") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if isinstance(keys, list) and len(keys) == 1:
        data = keys[0]
    if not isinstance(data, dict):
        raise ConfigurationError("the private key JSON is not a JWK object")
    return data


def generate_private_key(alg: str) -> Key:
    """A new private key for ``alg``: RSA 2048 for RS384, P-384 for ES384.

    Raises:
        ConfigurationError: ``alg`` is neither RS384 nor ES384.
    """
    if alg not in ALGORITHMS:
        raise ConfigurationError(
            f"unsupported algorithm {alg!r}: use one of {', '.join(ALGORITHMS)}"
        )
    key: Key = ECKey.generate_key("P-384") if alg == "ES384" else RSAKey.generate_key(2048)
    key.ensure_kid()
    return key


def public_jwks(key: Key, alg: str | None = None) -> dict[str, Any]:
    """The public JWKS to register with the EHR (Epic, Oracle Health) for this key."""
    public = key.as_dict(private=False) | {"alg": alg or algorithm_for(key), "use": "sig"}
    return {"keys": [public]}


def write_private_key(key: Key, path: Path) -> Path:
    """Write the private key as PEM, readable by the owner only (0600), and its public JWKS.

    Returns:
        the path of the public JWKS, ``<path>.jwks.json``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_secret_file(path, key.as_pem(private=True))
    jwks_path = path.with_name(path.name + ".jwks.json")
    jwks_path.write_text(json.dumps(public_jwks(key), indent=2) + "\n")
    return jwks_path


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to a file created with mode 0600 (never world-readable)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(partial, 0o600)  # an existing partial file keeps its old mode under O_CREAT
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
