"""The audit log, read as a keyset-paginated list (newest first)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from infra.pagination import SortKey, apply_keyset
from infra.repos import scope as readable
from infra.repos.base import Executor, Page, Scope, to_page
from infra.tables import audit_log

SORT = SortKey("AT_DESC", audit_log.c.at, audit_log.c.id, descending=True)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive


def _filtered(stmt: Select[Any], f: AuditFilter) -> Select[Any]:
    a = audit_log.c
    if f.actor is not None:
        stmt = stmt.where(a.actor == f.actor)
    if f.action is not None:
        stmt = stmt.where(a.action == f.action)
    if f.target_id is not None:
        stmt = stmt.where(a.target_ids.contains([f.target_id]))
    if f.since is not None:
        stmt = stmt.where(a.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(a.at < f.until)
    return stmt


async def page(db: Executor, *, f: AuditFilter, first: int, after: str | None, scope: Scope) -> Page:
    stmt = apply_keyset(_filtered(select(audit_log).where(readable.audit_entries(scope)), f), SORT, first, after)
    return to_page((await db.execute(stmt)).all(), first)


async def count(db: Executor, *, f: AuditFilter, scope: Scope) -> int:
    stmt = select(func.count()).select_from(audit_log).where(readable.audit_entries(scope))
    return int((await db.execute(_filtered(stmt, f))).scalar_one())
