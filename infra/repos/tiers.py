"""Tier policies, tiers and tier history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import select

from infra.repos.base import Executor, Page, first_n_per_parent
from infra.tables import tier_changes, tier_policies, tiers


async def policies(db: Executor, statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    stmt = select(tier_policies).order_by(tier_policies.c.version.desc())
    if statuses:
        stmt = stmt.where(tier_policies.c.status.in_(list(statuses)))
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]


async def tiers_of(db: Executor, policy_ids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    rows = (await db.execute(select(tiers).where(tiers.c.policy_id.in_(list(policy_ids))).order_by(tiers.c.rank))).all()
    out: dict[UUID, list[dict[str, Any]]] = {pid: [] for pid in policy_ids}
    for r in rows:
        out[r.policy_id].append(dict(r._mapping))
    return out


async def active_tiers(db: Executor) -> dict[str, dict[str, Any]]:
    stmt = (
        select(tiers)
        .join(tier_policies, tier_policies.c.id == tiers.c.policy_id)
        .where(tier_policies.c.status == "active")
    )
    return {r.code: dict(r._mapping) for r in (await db.execute(stmt)).all()}


async def history_for_customers(db: Executor, customer_ids: list[UUID], *, first: int) -> dict[UUID, Page]:
    t = tier_changes
    return await first_n_per_parent(
        db, select(t), t.c.customer_id, customer_ids, [t.c.changed_at.desc(), t.c.id.desc()], first
    )
