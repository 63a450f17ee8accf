"""What repositories share: an executor (a request's RequestDb or a UnitOfWork) and the row scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Result
from sqlalchemy.sql import Executable


class Executor(Protocol):
    async def execute(self, statement: Executable, params: Any = None) -> Result[Any]: ...


def same_partner(column: Any, partner_id: UUID | None) -> ColumnElement[bool]:
    """``column`` is this partner (or no partner, for staff data). ``=`` / ``IS NULL`` rather than
    ``IS NOT DISTINCT FROM``: only these can use the (partner, external id) indexes; the other scans
    a whole index per lookup (seconds at a million rows)."""
    return column == partner_id if partner_id is not None else column.is_(None)


@dataclass(frozen=True)
class Scope:
    """Which rows a caller may see: ``partner_id`` set means only that partner's customers."""

    partner_id: UUID | None = None

    @property
    def unrestricted(self) -> bool:
        return self.partner_id is None


ALL = Scope()


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    has_next: bool


def to_page(rows: list[Any], first: int) -> Page:
    items = [dict(r._mapping) for r in rows[:first]]
    return Page(items, len(rows) > first)


async def first_n_per_parent(
    db: Executor,
    stmt: Any,
    parent_column: Any,
    parent_ids: list[Any],
    order_by: list[Any],
    first: int,
) -> dict[Any, Page]:
    """The first ``first`` rows of each parent, in one statement (a window over the parents).

    ``stmt`` is a select of the child columns (with any joins and scope already
    applied). One query for any number of parents: the statement count of a page
    does not grow with its size.
    """
    from sqlalchemy import func as f
    from sqlalchemy import select as s

    ranked = (
        stmt.add_columns(f.row_number().over(partition_by=parent_column, order_by=order_by).label("_rn"))
        .where(parent_column.in_(parent_ids))
        .subquery()
    )
    rows = (await db.execute(s(ranked).where(ranked.c._rn <= first + 1).order_by(ranked.c._rn))).all()
    grouped: dict[Any, list[Any]] = {pid: [] for pid in parent_ids}
    parent_key = parent_column.key
    for row in rows:
        grouped[row._mapping[parent_key]].append(row)
    return {pid: to_page(items, first) for pid, items in grouped.items()}
