"""Encryption at rest of sensitive values, and keyed blind indexes for equality lookups.

Every encrypted value is a self-describing text token ``tw2:<key id>:<urlsafe base64(nonce || ciphertext)>``
made with AES-256-GCM (authenticated). The associated data binds the token to its column *and its row*
(``tw2|customers.email|<row id>``): a value copied into another column, or into the same column of
another row (one customer's e-mail swapped with another's by someone who can write to the database),
fails authentication. Version 1 tokens (``tw1:``, bound to the column only: what migration 0007 and
earlier releases wrote) still decrypt; ``tierwise keys rotate`` rewrites them as ``tw2`` and moves every
value to the current key (infra/keyrotation.py). The key id beside each value lets keys rotate: new
writes use the current key.

Writes need the row id at encryption time: a value bound to an encrypted column is wrapped with
``for_row(row_id, value)`` (``bind_row`` wraps every encrypted column of a values dict); a bare value is
refused, so no write path can fall back to unbound tokens. Reads get the row id from SQL: the column
types select ``CAST(id AS text) || ' ' || token`` (``column_expression``), so every select through the
table objects decrypts with the row it read the token from. A value that fails (tampered, moved, unknown
key) is logged and read as a ``domain.errors.DataIntegrity`` instance instead of its plaintext: the API
answers that field null with a ``DATA_INTEGRITY`` error at its path, the rest of the request as usual.

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
import hmac
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, literal_column, type_coerce
from sqlalchemy.sql import operators
from sqlalchemy.types import Text, TypeDecorator

from domain.errors import DataIntegrity
from infra.keys import DEV_BLIND_INDEX_KEY as DEV_BLIND_INDEX_KEY
from infra.keys import DEV_ENCRYPTION_KEYS as DEV_ENCRYPTION_KEYS
from infra.keys import KeyConfig
from infra.keys import KeyConfigError as KeyConfigError
from infra.keys import generate_key as generate_key
from infra.keys import generate_key_line as generate_key_line

if TYPE_CHECKING:
    from infra.settings import Settings

V1 = "tw1"  # bound to the column only (migration 0007, releases before row binding): read, never written
V2 = "tw2"  # bound to the column and the row
PREFIX = V2  # what new writes make
VERSIONS = (V1, V2)
NONCE_BYTES = 12
BLIND_INDEX_KINDS = ("email", "phone", "national_id", "name_dob")

# Every encrypted column, as (table, column): key rotation and `keys status` walk these (so a key can
# leave the keyring only once none of them needs it). Webhook secrets are here too: a delivery is
# signed with the endpoint's secret, so a secret left under a removed key would stop its deliveries.
ENCRYPTED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("customers", "email"),
    ("customers", "phone"),
    ("customers", "national_id"),
    ("customers", "birth_date"),
    ("customers", "address"),
    ("complaints", "description"),
    ("complaint_events", "note"),
    ("survey_answers", "text"),
    ("webhook_endpoints", "secret"),
)


class DecryptionError(ValueError):
    """A stored value does not decrypt: not a token, unknown key id, or failed authentication."""


class TokenMismatch(DecryptionError):
    """A token fails authentication: tampered, or moved from another row or column."""


log = logging.getLogger("tierwise.crypto")
RowId = uuid.UUID | int | str


def row_key(row_id: RowId) -> str:
    """The row id as the associated data spells it (PostgreSQL's ``id::text``: a lowercase hyphenated
    uuid, a decimal bigint)."""
    return str(row_id) if not isinstance(row_id, str) else row_id.lower()


class Keyring:
    """The encryption keys by id, the id new writes use, and the blind-index key."""

    def __init__(self, keys: Mapping[str, bytes], current_id: str, blind_index_key: bytes) -> None:
        KeyConfig(keys, current_id, blind_index_key)  # the checks of infra/keys.py
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_ids: tuple[str, ...] = tuple(keys)
        self.current_id = current_id
        self._bidx_key = blind_index_key

    @classmethod
    def of(cls, config: KeyConfig) -> Keyring:
        return cls(config.keys, config.current_id, config.blind_index_key)

    @classmethod
    def parse(cls, keys: str, blind_index_key: str, current_id: str | None = None) -> Keyring:
        return cls.of(KeyConfig.parse(keys, blind_index_key, current_id))

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The configured keys; the fixed development keys when unset (settings refuse that in production)."""
        return cls.of(
            KeyConfig.configured(
                settings.encryption_keys.get_secret_value() if settings.encryption_keys else None,
                settings.blind_index_key.get_secret_value() if settings.blind_index_key else None,
                settings.encryption_key_id,
            )
        )

    # ------------------------------------------------------------ encryption

    @staticmethod
    def _aad(version: str, column: str, row_id: RowId | None) -> bytes:
        if version == V1:
            return f"{V1}|{column}".encode()
        if row_id is None:
            raise DecryptionError(f"{column}: a {V2} token is bound to its row, and no row id was given")
        return f"{V2}|{column}|{row_key(row_id)}".encode()

    def encrypt(self, plaintext: str, column: str, row_id: RowId | None = None) -> str:
        """A ``tw2:<current key id>:<…>`` token of ``plaintext``, bound to ``column`` (``table.column``) and
        the row ``row_id``. Without a row id: a version 1 token, bound to the column only — kept for
        migration 0007's data step (a landed migration is never edited; ``keys rotate`` upgrades its
        tokens); every write of the application binds the row."""
        version = V1 if row_id is None else V2
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.current_id].encrypt(nonce, plaintext.encode(), self._aad(version, column, row_id))
        return f"{version}:{self.current_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, column: str, row_id: RowId | None = None) -> str:
        """The plaintext of a token made for ``column`` (and, for ``tw2``, for the row ``row_id``);
        ``DecryptionError`` with the reason otherwise."""
        version, key_id, body = _split(token, column)
        aead = self._aead.get(key_id)
        if aead is None:
            raise DecryptionError(
                f"{column}: value encrypted under key id {key_id!r}, which is not in TIERWISE_ENCRYPTION_KEYS "
                f"(known: {', '.join(self.key_ids)}); add the old key back until `tierwise keys rotate` has run"
            )
        try:  # base64.urlsafe_b64decode without its layers (ASCII only, same alphabet, same errors)
            raw = binascii.a2b_base64(body.encode("ascii").translate(_URLSAFE_TO_STANDARD))
        except (binascii.Error, ValueError):
            raise DecryptionError(f"{column}: malformed encrypted value") from None
        if len(raw) < NONCE_BYTES + 16:
            raise DecryptionError(f"{column}: malformed encrypted value (too short)")
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(version, column, row_id)).decode()
        except InvalidTag:
            moved = "another column" if version == V1 else "another row or column"
            raise TokenMismatch(
                f"{column}: value fails authentication under key {key_id!r} "
                f"(tampered, made with another key of that id, or copied from {moved})"
            ) from None

    def needs_rotation(self, token: str) -> bool:
        """Whether a token is not yet what writes make now: under another key, or of version 1."""
        version, key_id, _ = _split(token, "value")
        return key_id != self.current_id or version != V2

    def reencrypt(self, token: str, column: str, row_id: RowId) -> str:
        """The same plaintext as a ``tw2`` token under the current key, bound to ``row_id`` (the token
        itself when it is one already). A ``tw2`` token must decrypt for ``row_id`` itself: a value moved
        from another row is not laundered into a valid one."""
        if not self.needs_rotation(token):
            return token
        return self.encrypt(self.decrypt(token, column, row_id), column, row_id)

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


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _split(token: str, column: str) -> tuple[str, str, str]:
    parts = token.split(":", 2) if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] not in VERSIONS or not parts[1]:
        raise DecryptionError(f"{column}: not an encrypted value (expected {V2}:<key id>:… or {V1}:…)")
    return parts[0], parts[1], parts[2]


def key_id_of(token: str) -> str:
    """The key id of a token (``DecryptionError`` if it is not one)."""
    return _split(token, "value")[1]


def version_of(token: str) -> str:
    """``tw1`` or ``tw2`` (``DecryptionError`` if it is not a token)."""
    return _split(token, "value")[0]


# ---------------------------------------------------------------- values bound to their row


@dataclass(frozen=True, slots=True)
class ForRow:
    """A plaintext to write into an encrypted column of the row ``row_id`` (see ``for_row``)."""

    row_id: RowId
    value: Any


def for_row(row_id: RowId, value: Any) -> ForRow | None:
    """``value`` for an encrypted column of the row ``row_id`` (None stays None: a NULL)."""
    return None if value is None else ForRow(row_id, value)


def bind_row(table: Table, row_id: RowId, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (column → value) with every plain value of an encrypted column of ``table`` bound to
    the row ``row_id``; other columns, SQL expressions and NULLs as given."""
    out = dict(values)
    for name, value in values.items():
        column = table.c.get(name)
        if (
            column is not None
            and isinstance(column.type, EncryptedText)
            and value is not None
            and not hasattr(value, "__clause_element__")
        ):
            out[name] = ForRow(row_id, value)
    return out


def unreadable(column: str, row_id: str | None, error: DecryptionError) -> DataIntegrity:
    """What a read gets instead of a value that does not decrypt: logged loudly (column, row, reason;
    never a value), and a ``DataIntegrity`` the API reports at the field's path."""
    log.error("DATA INTEGRITY: %s of row %s does not decrypt: %s", column, row_id or "?", error)
    return DataIntegrity(
        "the stored value fails its integrity check (altered, or moved from another row or column): not shown",
        field=column,
    )


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
    """Text stored as a ``tw2:`` token bound to ``column`` (``table.column``) and its row (the table's
    ``id``). Bind ``for_row(row_id, value)``; a select returns the plaintext, or a ``DataIntegrity`` for a
    value that does not decrypt (module docstring).

    Only NULL tests are allowed in SQL: any other comparison would compare ciphertexts (each made with
    a fresh nonce) and silently match nothing, so it raises; compare the blind index instead.
    """

    impl = Text
    cache_ok = True

    class Comparator(TypeDecorator.Comparator[str]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op in _NULL_TESTS and len(other) == 1 and other[0] is None:
                return super().operate(op, *other, **kwargs)
            column = self.type.column if isinstance(self.type, EncryptedText) else "this column"
            raise TypeError(
                f"{column} is encrypted: it cannot be compared in SQL (use its blind index, see infra/crypto.py)"
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
        if value is None:
            return None
        if not isinstance(value, ForRow):
            raise TypeError(
                f"{self.column} is encrypted bound to its row: write crypto.for_row(row_id, value) "
                "(or crypto.bind_row(table, row_id, values)), not a bare value"
            )
        return current().encrypt(self._dump(value.value), self.column, value.row_id)

    def column_expression(self, colexpr: Any) -> Any:
        """Select ``<row id> <token>``: the row id comes from the same row as the token, in SQL."""
        table = getattr(colexpr, "table", None)
        row_id = None if table is None else table.c.get("id")
        if row_id is None:
            raise TypeError(f"{self.column} can only be selected beside its row's id (infra/crypto.py)")
        return type_coerce(row_id.cast(Text).concat(literal_column("' '")).concat(colexpr), self)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        row_id, _, token = value.partition(" ")
        try:
            return self._load(current().decrypt(token, self.column, row_id))
        except DecryptionError as error:
            return unreadable(self.column, row_id, error)

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
