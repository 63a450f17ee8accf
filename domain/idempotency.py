"""Idempotent creates: a partner's external id (or another natural key) names one object.

Sending the same key with the same content again is a replay: the existing object is the answer and
nothing happens twice. The same key with other content is a mistake of the caller (a reused or
colliding id): a CONFLICT naming what differs, and nothing is written. "Content" is what the create
was given, compared after the same normalisation as when it was stored; what the system chose (a
default time, a tier, an id) is not part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.errors import Conflict, ValidationFailed


def differences(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """The names of the requested values that differ from the stored ones (in the requested order)."""
    return [name for name, value in requested.items() if stored.get(name) != value]


def key_reused(key: str, differing: list[str], *, where: str | None = None) -> ValidationFailed:
    """The error of a key sent again with other content (``where``: the key's path, default ``key``)."""
    error = ValidationFailed(
        f"{key} already used with other content (differs in {', '.join(differing)})", field=where or key
    )
    error.code = Conflict.code
    return error


def check_replay(key: str, stored: Mapping[str, Any], requested: Mapping[str, Any]) -> None:
    """Raise the CONFLICT of ``key_reused`` unless ``requested`` is what ``stored`` was created with."""
    differing = differences(stored, requested)
    if differing:
        raise key_reused(key, differing)
