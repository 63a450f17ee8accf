"""What repositories share: an executor (a request's RequestDb or a UnitOfWork) and the row scope."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Table, bindparam, func, select, text
from sqlalchemy.engine import CursorResult, Result, Row
from sqlalchemy.sql import Executable


class Executor(Protocol):
    async def execute(self, statement: Executable, params: Any = None) -> Result[Any]: ...


async def next_ids(db: Executor, table: Table, n: int) -> list[int]:
    """``n`` fresh ids from the identity sequence of ``table.id``, for rows inserted with them: an
    encrypted value is bound to its row's id, so the id is needed before the insert (infra/crypto.py)."""
    stmt = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
    return [int(r[0]) for r in (await db.execute(stmt, {"table": table.name, "n": n})).all()]


def dict_rows(result: Result[Any]) -> list[dict[str, Any]]:
    """Every row of a result as a dict."""
    return [dict(r._mapping) for r in result.all()]


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (the result of a DML statement is a ``CursorResult``)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"no row count on a {type(result).__name__}")
    return int(result.rowcount or 0)


def escape_like(value: str) -> str:
    """``value`` as a literal inside a LIKE/ILIKE pattern (escape character: backslash)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


def to_page(rows: Sequence[Row[Any]], first: int) -> Page:
    items = [dict(r._mapping) for r in rows[:first]]
    return Page(items, len(rows) > first)


# Built per-parent statements by their key (a handful, fixed by the code: the child table and its column
# list per role set). Building and compiling one costs ~0.5 ms of Python; a built statement is reused with
# new parameters (SQLAlchemy memoises its cache key, asyncpg keeps it prepared).
_PER_PARENT: dict[Hashable, tuple[Any, str]] = {}


def _per_parent_statement(key: Hashable, build: Callable[[], tuple[Any, Any, list[Any]]]) -> tuple[Any, str]:
    found = _PER_PARENT.get(key)
    if found is None:
        stmt, parent_column, order_by = build()
        ranked = (
            stmt.add_columns(func.row_number().over(partition_by=parent_column, order_by=order_by).label("_rn"))
            .where(parent_column.in_(bindparam("parent_ids", expanding=True)))
            .subquery()
        )
        statement = select(ranked).where(ranked.c._rn <= bindparam("row_limit")).order_by(ranked.c._rn)
        found = _PER_PARENT[key] = (statement, parent_column.key)
    return found


async def first_n_per_parent(
    db: Executor,
    key: Hashable,
    build: Callable[[], tuple[Any, Any, list[Any]]],
    parent_ids: list[Any],
    first: int,
) -> dict[Any, Page]:
    """The first ``first`` rows of each parent, in one statement (a window over the parents).

    ``build()`` gives the select of the child columns (with any joins and scope already applied), the
    parent column and the order within a parent; it is called once per ``key`` (what the select depends
    on). One query for any number of parents: the statement count of a page does not grow with its size.
    """
    statement, parent_key = _per_parent_statement(key, build)
    rows = (await db.execute(statement, {"parent_ids": list(parent_ids), "row_limit": first + 1})).all()
    grouped: dict[Any, list[Row[Any]]] = {pid: [] for pid in parent_ids}
    for row in rows:
        grouped[row._mapping[parent_key]].append(row)
    return {pid: to_page(items, first) for pid, items in grouped.items()}
