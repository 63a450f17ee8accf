"""Small pieces every resolver module shares."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

from api.graphql.core.errors import coded, query_error, user_errors
from domain.errors import DomainError

P = TypeVar("P")


async def mutate(payload: type[P], fn: Callable[[], Awaitable[P]]) -> P:
    """Run a use-case; a domain error becomes the payload's ``userErrors`` (its transaction was
    rolled back, so nothing was written)."""
    try:
        return await fn()
    except DomainError as exc:
        return payload(user_errors=user_errors(exc))  # type: ignore[call-arg]


def page_size(cap: int, first: int) -> int:
    """``first`` of a top-level list, refused outside 1..cap (``TIERWISE_MAX_PAGE_SIZE``)."""
    if not 1 <= first <= cap:
        raise coded(f"first must be between 1 and {cap}", "BAD_USER_INPUT")
    return first


def forget(loader: Any, key: Any) -> None:
    """Drop a cached row so a mutation's result is read fresh (strawberry raises on unknown keys)."""
    with contextlib.suppress(KeyError):
        loader.clear(key)


def enum_value(value: Enum | str) -> str:
    """The value of a GraphQL enum argument (strawberry hands defaults over as plain strings)."""
    return value.value if isinstance(value, Enum) else value


async def query(fn: Callable[[], Awaitable[P]]) -> P:
    """Run a read; a domain error becomes a coded GraphQL error (NOT_FOUND, BAD_USER_INPUT…)."""
    try:
        return await fn()
    except DomainError as exc:
        raise query_error(exc) from None
