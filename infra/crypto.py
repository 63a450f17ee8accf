"""Encryption at rest of sensitive values, and keyed blind indexes for equality lookups.

Every encrypted value is a self-describing text token ``tw1:<key id>:<urlsafe base64(nonce || ciphertext)>``
made with AES-256-GCM (authenticated). The associated data binds the token to its column
(``customers.email``), so a value copied into another column fails to decrypt. The key id beside each
value lets keys rotate: new writes use the current key, ``tierwise keys rotate`` re-encrypts the rest
(infra/keyrotation.py).

Encrypted columns cannot be compared in SQL (each encryption uses a fresh nonce): equality lookups and
duplicate matching go through blind indexes, hex HMAC-SHA256 of the *normalised* value under a separate
key, domain-separated by kind.

The keyring is process-wide: ``configure(Keyring.from_settings(settings))`` at startup; ``current()``
builds it from the environment on first use when nobody configured it. The SQLAlchemy types at the end
encrypt on bind and decrypt on result, so repositories read and write plaintext as before.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.sql import operators
from sqlalchemy.types import Text, TypeDecorator

if TYPE_CHECKING:
    from infra.settings import Settings

PREFIX = "tw1"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
BLIND_INDEX_KINDS = ("email", "phone", "national_id", "name_dob")

# Fixed development keys (like DEV_JWT_SECRET): used only outside production when nothing is configured.
DEV_ENCRYPTION_KEYS = (
    "dev1:" + base64.b64encode(hashlib.sha256(b"tierwise development encryption key").digest()).decode()
)
DEV_BLIND_INDEX_KEY = base64.b64encode(hashlib.sha256(b"tierwise development blind index key").digest()).decode()

# Every encrypted column, as (table, column): migration 0007, key rotation and `keys status` walk these.
ENCRYPTED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("customers", "email"),
    ("customers", "phone"),
    ("customers", "national_id"),
    ("customers", "birth_date"),
    ("customers", "address"),
    ("complaints", "description"),
    ("complaint_events", "note"),
    ("survey_answers", "text"),
)


class KeyConfigError(ValueError):
    """The key configuration is unusable (bad syntax, wrong length, unknown current key id)."""


class DecryptionError(ValueError):
    """A stored value does not decrypt: not a token, unknown key id, or failed authentication."""


def _decode_key(text: str, what: str) -> bytes:
    text = text.strip()
    try:
        standard = text.replace("-", "+").replace("_", "/")  # urlsafe or standard alphabet
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{what} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(f"{what} must be {KEY_BYTES} bytes (base64 of 32 random bytes), got {len(raw)}")
    return raw


def parse_keys(spec: str) -> dict[str, bytes]:
    """``k1:<base64>,k2:<base64>`` → {key id: 32-byte key}, in the order given."""
    keys: dict[str, bytes] = {}
    for part in spec.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key_id, sep, material = part.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID.match(key_id):
            raise KeyConfigError(
                "TIERWISE_ENCRYPTION_KEYS is a comma-separated list of <key id>:<base64 key>, "
                "key ids of 1-32 letters, digits, '_' or '-'"
            )
        if key_id in keys:
            raise KeyConfigError(f"key id {key_id!r} is listed twice in TIERWISE_ENCRYPTION_KEYS")
        keys[key_id] = _decode_key(material, f"key {key_id!r}")
    if not keys:
        raise KeyConfigError("TIERWISE_ENCRYPTION_KEYS lists no key")
    return keys


def uses_development_keys(keys: str, blind_index_key: str) -> bool:
    """Whether a key configuration reuses a fixed development key, in any base64 spelling."""
    dev_keys = set(parse_keys(DEV_ENCRYPTION_KEYS).values())
    return not dev_keys.isdisjoint(parse_keys(keys).values()) or _decode_key(
        blind_index_key, "TIERWISE_BLIND_INDEX_KEY"
    ) == _decode_key(DEV_BLIND_INDEX_KEY, "the development blind-index key")


def generate_key_line(key_id: str) -> str:
    """A fresh ``<key id>:<base64 of 32 random bytes>`` for TIERWISE_ENCRYPTION_KEYS."""
    if not KEY_ID.match(key_id):
        raise KeyConfigError("a key id is 1-32 letters, digits, '_' or '-'")
    return f"{key_id}:{generate_key()}"


def generate_key() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


class Keyring:
    """The encryption keys by id, the id new writes use, and the blind-index key."""

    def __init__(self, keys: Mapping[str, bytes], current_id: str, blind_index_key: bytes) -> None:
        if not keys:
            raise KeyConfigError("no encryption key")
        if current_id not in keys:
            known = ", ".join(keys)
            raise KeyConfigError(
                f"TIERWISE_ENCRYPTION_KEY_ID {current_id!r} is not in TIERWISE_ENCRYPTION_KEYS (known: {known})"
            )
        for key_id, key in keys.items():
            if not KEY_ID.match(key_id) or len(key) != KEY_BYTES:
                raise KeyConfigError(f"key {key_id!r}: ids are 1-32 [A-Za-z0-9_-], keys {KEY_BYTES} bytes")
        if len(blind_index_key) != KEY_BYTES:
            raise KeyConfigError(f"the blind-index key must be {KEY_BYTES} bytes")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_ids: tuple[str, ...] = tuple(keys)
        self.current_id = current_id
        self._bidx_key = blind_index_key

    @classmethod
    def parse(cls, keys: str, blind_index_key: str, current_id: str | None = None) -> Keyring:
        parsed = parse_keys(keys)
        return cls(parsed, current_id or list(parsed)[-1], _decode_key(blind_index_key, "TIERWISE_BLIND_INDEX_KEY"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The configured keys; the fixed development keys when unset (settings refuse that in production)."""
        keys = settings.encryption_keys.get_secret_value() if settings.encryption_keys else DEV_ENCRYPTION_KEYS
        bidx = settings.blind_index_key.get_secret_value() if settings.blind_index_key else DEV_BLIND_INDEX_KEY
        return cls.parse(keys, bidx, settings.encryption_key_id or None)

    # ------------------------------------------------------------ encryption

    @staticmethod
    def _aad(column: str) -> bytes:
        return f"{PREFIX}|{column}".encode()

    def encrypt(self, plaintext: str, column: str) -> str:
        """A ``tw1:<current key id>:<…>`` token of ``plaintext``, bound to ``column`` (``table.column``)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.current_id].encrypt(nonce, plaintext.encode(), self._aad(column))
        return f"{PREFIX}:{self.current_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, column: str) -> str:
        """The plaintext of a token made for ``column``; ``DecryptionError`` with the reason otherwise."""
        key_id, body = _split(token, column)
        aead = self._aead.get(key_id)
        if aead is None:
            raise DecryptionError(
                f"{column}: value encrypted under key id {key_id!r}, which is not in TIERWISE_ENCRYPTION_KEYS "
                f"(known: {', '.join(self.key_ids)}); add the old key back until `tierwise keys rotate` has run"
            )
        try:
            raw = base64.urlsafe_b64decode(body)
        except (binascii.Error, ValueError):
            raise DecryptionError(f"{column}: malformed encrypted value") from None
        if len(raw) < NONCE_BYTES + 16:
            raise DecryptionError(f"{column}: malformed encrypted value (too short)")
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(column)).decode()
        except InvalidTag:
            raise DecryptionError(
                f"{column}: value fails authentication under key {key_id!r} "
                "(tampered, made with another key of that id, or copied from another column)"
            ) from None

    def needs_rotation(self, token: str) -> bool:
        return key_id_of(token) != self.current_id

    def reencrypt(self, token: str, column: str) -> str:
        """The same plaintext under the current key (the token itself when it is already)."""
        return token if not self.needs_rotation(token) else self.encrypt(self.decrypt(token, column), column)

    # ------------------------------------------------------------ blind indexes

    def blind_index(self, kind: str, normalized: str) -> str:
        """Hex HMAC-SHA256 of an already normalised value, domain-separated by ``kind``."""
        if kind not in BLIND_INDEX_KINDS:
            raise ValueError(f"unknown blind-index kind {kind!r} (one of {', '.join(BLIND_INDEX_KINDS)})")
        return hmac.digest(self._bidx_key, f"{kind}\x00{normalized}".encode(), "sha256").hex()

    def customer_indexes(self, values: Mapping[str, Any]) -> dict[str, str | None]:
        """The blind-index columns for the customer values given (only those whose sources are present).

        ``name_dob_bidx`` needs both ``name`` and ``birth_date`` in ``values``.
        """
        out: dict[str, str | None] = {}
        for kind in ("email", "phone", "national_id"):
            if kind in values:
                value = values[kind]
                out[f"{kind}_bidx"] = None if value is None else self.blind_index(kind, str(value))
        if "name" in values and "birth_date" in values:
            name, birth = values["name"], values["birth_date"]
            out["name_dob_bidx"] = (
                None
                if name is None or birth is None
                else self.blind_index("name_dob", name_dob_index_value(name, birth))
            )
        return out


# The customers' blind-index columns (what ``Keyring.customer_indexes`` fills).
BLIND_INDEX_COLUMNS = ("email_bidx", "phone_bidx", "national_id_bidx", "name_dob_bidx")


def name_dob_index_value(name: str, birth_date: dt.date | str) -> str:
    """Casefolded, whitespace-collapsed name and the ISO birth date: ``"ada lovelace|1815-12-10"``."""
    iso = birth_date if isinstance(birth_date, str) else birth_date.isoformat()
    return f"{' '.join(name.casefold().split())}|{iso}"


def _split(token: str, column: str) -> tuple[str, str]:
    parts = token.split(":", 2) if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1]:
        raise DecryptionError(f"{column}: not an encrypted value (expected {PREFIX}:<key id>:…)")
    return parts[1], parts[2]


def key_id_of(token: str) -> str:
    """The key id of a token (``DecryptionError`` if it is not one)."""
    return _split(token, "value")[0]


# ---------------------------------------------------------------- process-wide keyring

_current: Keyring | None = None
_lock = threading.Lock()


def configure(keyring: Keyring) -> None:
    global _current
    _current = keyring


def current() -> Keyring:
    """The configured keyring (built from the environment's settings on first use if none was configured)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                from infra.settings import Settings

                _current = Keyring.from_settings(Settings())
    return _current


# ---------------------------------------------------------------- SQLAlchemy column types


_NULL_TESTS = {operators.is_, operators.is_not, operators.eq, operators.ne}


class EncryptedText(TypeDecorator[str]):
    """Text stored as a ``tw1:`` token bound to ``column`` (``table.column``).

    Only NULL tests are allowed in SQL: any other comparison would compare ciphertexts (each made with
    a fresh nonce) and silently match nothing, so it raises; compare the blind index instead.
    """

    impl = Text
    cache_ok = True

    class Comparator(TypeDecorator.Comparator[str]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op in _NULL_TESTS and len(other) == 1 and other[0] is None:
                return super().operate(op, *other, **kwargs)
            raise TypeError(
                f"{self.type.column} is encrypted: it cannot be compared in SQL (use its blind index, "  # type: ignore[attr-defined]
                "see infra/crypto.py)"
            )

    comparator_factory = Comparator

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def _dump(self, value: Any) -> str:
        return str(value)

    def _load(self, value: str) -> Any:
        return value

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else current().encrypt(self._dump(value), self.column)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else self._load(current().decrypt(value, self.column))

    def process_literal_param(self, value: Any, dialect: Any) -> str:
        raise NotImplementedError("encrypted values are never rendered as SQL literals")

    @property
    def python_type(self) -> type[Any]:
        return str


class EncryptedDate(EncryptedText):
    """A ``datetime.date`` stored encrypted as its ISO text."""

    cache_ok = True

    def _dump(self, value: Any) -> str:
        return value if isinstance(value, str) else value.isoformat()

    def _load(self, value: str) -> Any:
        return dt.date.fromisoformat(value)

    @property
    def python_type(self) -> type[Any]:
        return dt.date


class EncryptedJSON(EncryptedText):
    """A JSON value (an address object) stored encrypted as compact JSON with sorted keys."""

    cache_ok = True

    def _dump(self, value: Any) -> str:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    def _load(self, value: str) -> Any:
        return orjson.loads(value)

    @property
    def python_type(self) -> type[Any]:
        return dict
