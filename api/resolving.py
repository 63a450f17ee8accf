"""Small pieces every resolver module shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

from api.errors import query_error, user_errors
from domain.errors import DomainError

P = TypeVar("P")


async def mutate(payload: type[P], fn: Callable[[], Awaitable[P]]) -> P:
    """Run a use-case; a domain error becomes the payload's ``userErrors`` (its transaction was
    rolled back, so nothing was written)."""
    try:
        return await fn()
    except DomainError as exc:
        return payload(user_errors=user_errors(exc))  # type: ignore[call-arg]


def enum_value(value: Enum | str) -> str:
    """The value of a GraphQL enum argument (strawberry hands defaults over as plain strings)."""
    return value.value if isinstance(value, Enum) else value


async def query(fn: Callable[[], Awaitable[P]]) -> P:
    """Run a read; a domain error becomes a coded GraphQL error (NOT_FOUND, BAD_USER_INPUT…)."""
    try:
        return await fn()
    except DomainError as exc:
        raise query_error(exc) from None
