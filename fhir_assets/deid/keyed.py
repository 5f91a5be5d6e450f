"""The keyed functions of de-identification, in Python (the reference) and as SQL per dialect.

Pseudonyms are keyed hashes of the identifier text, so the same id gives the same pseudonym in
every table (``patient_id`` still joins) and nobody without ``FHIR_DEID_KEY`` can recompute them.
The key is turned into HMAC's two pads once, here; only those pads (never the key) go into SQL.

Each warehouse's words are in its ``sql.Dialect`` (``keyed_hash``, ``add_days``,
``years_before``); its ``keyed_hash_scheme`` tells the reference below what it computes:

* ``hmac``: DuckDB has ``sha256`` over BLOBs but no HMAC: HMAC-SHA-256 (RFC 2104) is written out
  as its two nested hashes, ``H(opad || H(ipad || m))``; the result is byte-equal to ``hmac``.
* ``sha2-hex``: Snowflake has no HMAC either, and its ``SHA2`` hashes a *string* (a BINARY
  argument is first turned into hex text), so the outer hash cannot take the inner digest's
  bytes. The closest it offers is the same nesting over text:
  ``SHA2(hex(opad) || SHA2(hex(ipad) || m))``, a keyed hash whose outer key still hides the
  inner one (no length extension).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..warehouse.kinds import warehouse_kind
from ..warehouse.sql import Dialect
from .errors import DeidPolicyError

BLOCK = 64  # SHA-256's block size: an HMAC key of up to 64 bytes is used as it is
MIN_KEY_CHARS = 32
SHIFT_SPAN = 365  # date shifts lie in [-365, -1] or [1, 365] days, never 0
AGE_CAP = 90  # Safe Harbor: ages over 89 are one category, "90 or older"
HEX = "0123456789abcdef"
ZIP_FILE = Path(__file__).resolve().parent / "zip3_restricted.json"


def restricted_zip3() -> tuple[str, ...]:
    """The 3-digit ZIP prefixes Safe Harbor turns into ``000`` (shipped as data)."""
    return tuple(json.loads(ZIP_FILE.read_text(encoding="utf-8"))["prefixes"])


@dataclass(frozen=True, slots=True)
class DeidKey:
    """HMAC's pads of ``FHIR_DEID_KEY``; ``repr`` shows nothing of them."""

    ipad: bytes = field(repr=False)
    opad: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: str) -> DeidKey:
        """Derive the pads from the secret setting.

        The HMAC key is the SHA-256 hex digest of the secret: 64 ASCII bytes, one block.

        Raises:
            DeidPolicyError: the secret is shorter than ``MIN_KEY_CHARS``.
        """
        if len(secret or "") < MIN_KEY_CHARS:
            raise DeidPolicyError(
                f"FHIR_DEID_KEY must be at least {MIN_KEY_CHARS} characters (make one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        key = hashlib.sha256(secret.encode("utf-8")).hexdigest().encode("ascii")
        return cls(bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key))

    @property
    def hmac_key(self) -> bytes:
        """The HMAC key itself (for the reference functions and tests)."""
        return bytes(b ^ 0x36 for b in self.ipad)


def words(dialect: str | Dialect) -> Dialect:
    """A dialect, or the dialect of the warehouse kind named ``dialect``."""
    return warehouse_kind(dialect).dialect if isinstance(dialect, str) else dialect


def pseudonym(key: DeidKey, value: str, dialect: str | Dialect = "duckdb") -> str:
    """The pseudonym of ``value`` as a warehouse of ``dialect`` computes it (hex)."""
    if words(dialect).keyed_hash_scheme == "sha2-hex":
        inner = hashlib.sha256((key.ipad.hex() + value).encode("utf-8")).hexdigest()
        return hashlib.sha256((key.opad.hex() + inner).encode("utf-8")).hexdigest()
    return hmac.new(key.hmac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def shift_days(key: DeidKey, patient_pseudonym: str, dialect: str | Dialect = "duckdb") -> int:
    """The patient's date shift in days, from the key and the patient's pseudonym."""
    digest = pseudonym(key, "date-shift:" + patient_pseudonym, dialect)
    value = int(digest[:4], 16) % (2 * SHIFT_SPAN)
    return -(value + 1) if value < SHIFT_SPAN else value - SHIFT_SPAN + 1


def zip3(code: str | None, restricted: tuple[str, ...]) -> str | None:
    """Safe Harbor's ZIP rule: the first three digits, ``000`` for low-population prefixes;
    anything that does not start with three digits is dropped (None)."""
    text = (code or "").strip()
    if len(text) < 3 or not all(c in "0123456789" for c in text[:3]):
        return None
    return "000" if text[:3] in restricted else text[:3]


class KeyedSql:
    """The SQL of the keyed functions in one dialect (or a warehouse kind's name)."""

    def __init__(self, dialect: str | Dialect) -> None:
        self.words = words(dialect)

    def pseudonym(self, key: DeidKey, expr: str) -> str:
        """SQL: the hex pseudonym of ``expr`` (NULL stays NULL)."""
        text = f"CAST({expr} AS VARCHAR)"
        return self.words.keyed_hash.format(ipad=key.ipad.hex(), opad=key.opad.hex(), text=text)

    def shift_number(self, digest: str) -> str:
        """SQL: the first four hex digits of a digest column as an integer (0..65535)."""
        return " + ".join(
            f"(POSITION(SUBSTR({digest}, {i + 1}, 1) IN '{HEX}') - 1) * {16 ** (3 - i)}"
            for i in range(4)
        )

    @staticmethod
    def shift_days(number: str) -> str:
        """SQL: the integer date shift from ``shift_number``'s column, as ``shift_days``."""
        value = f"({number} % {2 * SHIFT_SPAN})"
        return (
            f"CAST(CASE WHEN {value} < {SHIFT_SPAN} THEN -({value} + 1) "
            f"ELSE {value} - {SHIFT_SPAN - 1} END AS INTEGER)"
        )

    def add_days(self, expr: str, days: str, kind: str) -> str:
        """SQL: a DATE (``kind`` "date") or timestamp moved by ``days``, keeping its type."""
        template = self.words.add_days if kind == "date" else self.words.add_days_timestamp
        return template.format(expr=expr, days=days)

    def zip3(self, expr: str, restricted: tuple[str, ...]) -> str:
        """SQL: ``zip3`` of a text column."""
        text = f"TRIM(CAST({expr} AS VARCHAR))"
        head = f"SUBSTR({text}, 1, 3)"
        listed = ", ".join(f"'{p}'" for p in restricted)
        return (
            f"CASE WHEN LENGTH({text}) >= 3 AND TRANSLATE({head}, '0123456789', '') = '' "
            f"THEN CASE WHEN {head} IN ({listed}) THEN '000' ELSE {head} END END"
        )

    def years_before(self, day: str, years: int) -> str:
        """SQL: the DATE ``years`` before the ISO date ``day``."""
        return self.words.years_before.format(day=day, years=years)
