"""Relay pieces every slice shares: Node, PageInfo, UserError, connections, and ``lazy`` for the types of
another slice (feature slices don't import each other)."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import strawberry

from domain.errors import ValidationFailed
from infra.pagination import encode_cursor
from infra.repos.base import Page


def lazy(module: str, name: str) -> Any:
    """``name`` from another slice's ``module``, imported when first used (as ``strawberry.lazy`` does for
    annotations): the customer links out to complaints, surveys and tiers without importing them."""
    return getattr(importlib.import_module(module), name)


@strawberry.type(description="A problem with the input of a mutation; nothing was changed.")
class UserError:
    field: str | None
    code: str
    message: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.interface(description="An object with a global id")
class Node:
    id: strawberry.ID


MAX_NESTED = 50


def _nested_first(first: int) -> int:

    if not 1 <= first <= MAX_NESTED:
        raise ValidationFailed(f"first must be between 1 and {MAX_NESTED}", field="first")
    return first


NodeT = TypeVar("NodeT")


@strawberry.type
class Edge(Generic[NodeT]):
    """An edge of a connection; ``Edge[ComplaintType]`` is the GraphQL type ``ComplaintEdge`` (strawberry
    names a generic by its type argument)."""

    cursor: str
    node: NodeT


@strawberry.type
class ConnectionBase:
    """A Relay connection: each one is a subclass named ``<Name>Connection`` that declares
    ``edges: list[Edge[<node type>]]`` (after ``pageInfo`` and ``totalCount``, as the schema has them)."""

    page_info: PageInfo
    if TYPE_CHECKING:  # declared by each connection with its own node type (not a field of this base)
        edges: Sequence[Edge[Any]]
    count_fn: strawberry.Private[Callable[[], Awaitable[int]] | None] = None
    # the class of its edges: ``Edge`` (named by its node type), or a subclass named otherwise
    edge_type: ClassVar[type[Edge[Any]]] = Edge

    @strawberry.field(description="Total matching rows (one extra count query, only when asked for)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def total_count(self) -> int | None:
        return await self.count_fn() if self.count_fn is not None else None

    @classmethod
    def from_page(
        cls,
        page: Page,
        sort: str,
        sort_column: str | None,
        build: Callable[[dict[str, Any]], Any],
        count_fn: Callable[[], Awaitable[int]] | None = None,
    ) -> Self:
        edges = [
            cls.edge_type(
                cursor=encode_cursor(sort, row.get("_sort", row.get(sort_column or "")), row["id"]), node=build(row)
            )
            for row in page.rows
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None),
            count_fn=count_fn,
        )
