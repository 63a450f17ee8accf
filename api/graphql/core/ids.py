"""Relay global ids: base64url("Type:uuid"). Opaque to clients, checked on the way in."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

from domain.errors import NotFound


def to_global_id(type_name: str, raw_id: UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{raw_id}".encode()).decode().rstrip("=")


def from_global_id(global_id: str, expected: str | None = None, *, field: str = "id") -> tuple[str, UUID]:
    """Decode a global id. A malformed id, or one of another type, is NOT_FOUND like an unknown one."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, raw = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        value = UUID(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise NotFound("no such object", field=field) from None
    if expected is not None and type_name != expected:
        raise NotFound("no such object", field=field)
    return type_name, value
