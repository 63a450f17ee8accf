"""Idempotent creates: a partner's external id (or another natural key) names one object.

Sending the same key with the same content again is a replay: the existing object is the answer and
nothing happens twice. The same key with other content is a mistake of the caller (a reused or
colliding id): a CONFLICT naming what differs, and nothing is written. "Content" is what the create
was given, compared after the same normalisation as when it was stored; what the system chose (a
default time, a tier, an id) is not part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Replay:
    """An item of a batch whose external id names an object already: ``stored`` (a row stored before the
    batch), or ``index`` (an earlier item of the batch); ``error``: the CONFLICT if its content differs."""

    stored: Mapping[str, Any] | None
    index: int | None
    error: ValidationFailed | None


@dataclass
class BatchKeys:
    """The external ids a batch's items carry: those stored before it (``stored``, by id) and those its own
    earlier accepted items took (``remember``). An item repeating either is a replay of that object."""

    stored: Mapping[str, Mapping[str, Any]]
    _first: dict[str, tuple[int, Mapping[str, Any]]] = field(default_factory=dict)

    def replay(
        self,
        key: str | None,
        content: Mapping[str, Any],
        stored_content: Callable[[Mapping[str, Any]], Mapping[str, Any]],
        *,
        where: str,
    ) -> Replay | None:
        """None for a new key; else the object it names, with the CONFLICT at ``where`` if ``content``
        differs from what that object was created with (``stored_content`` of a stored row)."""
        if key is None:
            return None
        if key in self.stored:
            row = self.stored[key]
            return Replay(row, None, _conflict(stored_content(row), content, where))
        if key in self._first:
            n, earlier = self._first[key]
            return Replay(None, n, _conflict(earlier, content, where))
        return None

    def answered(
        self,
        key: str | None,
        content: Mapping[str, Any],
        stored_content: Callable[[Mapping[str, Any]], Mapping[str, Any]],
        *,
        where: str,
        answers: list[Any],
        errors: list[ValidationFailed],
    ) -> bool:
        """Whether the item is a replay (``replay``), answered then: its answer appended to ``answers`` (the
        stored row, or the answer of the earlier item that took the key), its CONFLICT to ``errors``."""
        replay = self.replay(key, content, stored_content, where=where)
        if replay is None:
            return False
        if replay.error is not None:
            errors.append(replay.error)
        answers.append(replay.stored if replay.index is None else answers[replay.index])
        return True

    def remember(self, key: str | None, n: int, content: Mapping[str, Any]) -> None:
        """Item ``n`` of the batch, accepted, takes ``key``."""
        if key is not None:
            self._first[key] = (n, content)


def _conflict(stored: Mapping[str, Any], requested: Mapping[str, Any], where: str) -> ValidationFailed | None:
    differing = differences(stored, requested)
    return key_reused("externalId", differing, where=where) if differing else None
