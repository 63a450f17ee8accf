"""Small pieces every resolver module shares."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.errors import coded, query_error, user_errors
from api.graphql.core.ids import from_global_id
from domain.errors import DomainError, NotFound

P = TypeVar("P")


async def mutate(payload: Callable[..., P], fn: Callable[[], Awaitable[P]]) -> P:
    """Run a use-case; a domain error becomes the payload's ``userErrors`` (its transaction was
    rolled back, so nothing was written)."""
    try:
        return await fn()
    except DomainError as exc:
        return payload(user_errors=user_errors(exc))


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


def first_of(info: Info[Context, None], first: int) -> int:
    """``first`` of a top-level list, capped by the request's settings (``page_size``)."""
    return page_size(info.context.settings.max_page_size, first)


async def one(global_id: str, type_name: str, load: Callable[[UUID], Awaitable[Any]], build: Callable[[Any], P]) -> P:
    """One object by its global id through the caller's (scoped, guarded) loader; NOT_FOUND otherwise."""

    async def run() -> P:
        _, raw = from_global_id(global_id, type_name)
        row = await load(raw)
        if row is None:
            raise NotFound("no such object", field="id")
        return build(row)

    return await query(run)
