"""The encryption key configuration: its syntax, its checks and the fixed development keys.

A leaf of infra (standard library only), so the settings can check the configured keys at startup without
importing the encryption (infra/crypto.py builds its keyring from a checked ``KeyConfig``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

KEY_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Fixed development keys (like DEV_JWT_SECRET): used only outside production when nothing is configured.
DEV_ENCRYPTION_KEYS = (
    "dev1:" + base64.b64encode(hashlib.sha256(b"tierwise development encryption key").digest()).decode()
)
DEV_BLIND_INDEX_KEY = base64.b64encode(hashlib.sha256(b"tierwise development blind index key").digest()).decode()


class KeyConfigError(ValueError):
    """The key configuration is unusable (bad syntax, wrong length, unknown current key id)."""


def decode_key(text: str, what: str) -> bytes:
    """A 32-byte key from its base64 text (standard or urlsafe alphabet, padding optional)."""
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
        keys[key_id] = decode_key(material, f"key {key_id!r}")
    if not keys:
        raise KeyConfigError("TIERWISE_ENCRYPTION_KEYS lists no key")
    return keys


@dataclass(frozen=True)
class KeyConfig:
    """Checked key material: the encryption keys by id, the id new writes use, the blind-index key."""

    keys: Mapping[str, bytes]
    current_id: str
    blind_index_key: bytes

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyConfigError("no encryption key")
        if self.current_id not in self.keys:
            known = ", ".join(self.keys)
            raise KeyConfigError(
                f"TIERWISE_ENCRYPTION_KEY_ID {self.current_id!r} is not in TIERWISE_ENCRYPTION_KEYS (known: {known})"
            )
        for key_id, key in self.keys.items():
            if not KEY_ID.match(key_id) or len(key) != KEY_BYTES:
                raise KeyConfigError(f"key {key_id!r}: ids are 1-32 [A-Za-z0-9_-], keys {KEY_BYTES} bytes")
        if len(self.blind_index_key) != KEY_BYTES:
            raise KeyConfigError(f"the blind-index key must be {KEY_BYTES} bytes")

    @classmethod
    def parse(cls, keys: str, blind_index_key: str, current_id: str | None = None) -> KeyConfig:
        """From the settings' text: the last key listed is current unless ``current_id`` names one."""
        parsed = parse_keys(keys)
        return cls(parsed, current_id or list(parsed)[-1], decode_key(blind_index_key, "TIERWISE_BLIND_INDEX_KEY"))

    @classmethod
    def configured(cls, keys: str | None, blind_index_key: str | None, current_id: str | None) -> KeyConfig:
        """The configured keys; the fixed development keys for what is unset (settings refuse that in
        production)."""
        return cls.parse(
            DEV_ENCRYPTION_KEYS if keys is None else keys,
            DEV_BLIND_INDEX_KEY if blind_index_key is None else blind_index_key,
            current_id or None,
        )


def uses_development_keys(keys: str, blind_index_key: str) -> bool:
    """Whether a key configuration reuses a fixed development key, in any base64 spelling."""
    dev_keys = set(parse_keys(DEV_ENCRYPTION_KEYS).values())
    return not dev_keys.isdisjoint(parse_keys(keys).values()) or decode_key(
        blind_index_key, "TIERWISE_BLIND_INDEX_KEY"
    ) == decode_key(DEV_BLIND_INDEX_KEY, "the development blind-index key")


def generate_key_line(key_id: str) -> str:
    """A fresh ``<key id>:<base64 of 32 random bytes>`` for TIERWISE_ENCRYPTION_KEYS."""
    if not KEY_ID.match(key_id):
        raise KeyConfigError("a key id is 1-32 letters, digits, '_' or '-'")
    return f"{key_id}:{generate_key()}"


def generate_key() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()
