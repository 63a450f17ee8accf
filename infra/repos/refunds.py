"""Refunds: the purchases a batch refunds (locked, within the caller's scope), what was refunded of them
before, idempotent insert on the writer's (partner, external id). The use-case runs the after-change step."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.repos import scope as readable
from infra.repos.base import Executor, Scope
from infra.tables import customers, purchases, refunds

# Only purchases of customers the scope reaches, each refund with its purchase's customer ({scope}).
_INSERT = """
    INSERT INTO refunds (purchase_id, customer_id, partner_id, external_id, amount, reason, refunded_at,
                         purchased_at, closes_purchase, actor)
    SELECT u.* FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:partner_ids AS uuid[]),
                           CAST(:external_ids AS text[]), CAST(:amounts AS numeric[]), CAST(:reasons AS text[]),
                           CAST(:refunded_ats AS timestamptz[]), CAST(:purchased_ats AS timestamptz[]),
                           CAST(:closes AS boolean[]), CAST(:actors AS text[]))
        AS u(purchase_id, customer_id, partner_id, external_id, amount, reason, refunded_at, purchased_at,
             closes_purchase, actor)
    JOIN purchases p ON p.id = u.purchase_id AND p.customer_id = u.customer_id
    WHERE true{scope}
    ON CONFLICT (partner_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING refunds.*
    """


async def purchases_by_external_id(db: Executor, external_ids: Sequence[str], scope: Scope) -> dict[str, UUID]:
    """The writer's purchases by the external ids it recorded them with (a staff writer: those without partner)."""
    wanted = list(dict.fromkeys(external_ids))
    if not wanted:
        return {}
    rows = (
        await db.execute(
            select(purchases.c.external_id, purchases.c.id).where(
                readable.owned(scope, purchases.c.partner_id), purchases.c.external_id.in_(wanted)
            )
        )
    ).all()
    return {r.external_id: r.id for r in rows}


async def lock_purchases(conn: AsyncConnection, purchase_ids: Sequence[UUID], scope: Scope) -> dict[UUID, Any]:
    """The purchases of live customers the scope reaches, locked until the transaction ends (two refunds of
    one purchase are decided one after the other), with what was refunded of each before."""
    ids = sorted(set(purchase_ids), key=str)
    if not ids:
        return {}
    locked = (
        await conn.execute(
            select(purchases.c.id, purchases.c.customer_id, purchases.c.amount, purchases.c.purchased_at)
            .join(customers, customers.c.id == purchases.c.customer_id)
            .where(
                purchases.c.id.in_(ids),
                customers.c.deleted_at.is_(None),
                customers.c.merged_into_id.is_(None),
                readable.customers(scope),
            )
            .order_by(purchases.c.id)
            .with_for_update(of=purchases)
        )
    ).all()
    before = dict(
        (
            await conn.execute(
                select(refunds.c.purchase_id, func.sum(refunds.c.amount))
                .where(refunds.c.purchase_id.in_([r.id for r in locked]))
                .group_by(refunds.c.purchase_id)
            )
        ).all()
    )
    return {r.id: {**r._mapping, "refunded_before": before.get(r.id) or Decimal(0)} for r in locked}


async def by_external_id(db: Executor, external_ids: Sequence[str], scope: Scope) -> dict[str, dict[str, Any]]:
    """Refunds the writer recorded before, by external id."""
    wanted = list(dict.fromkeys(external_ids))
    if not wanted:
        return {}
    rows = (
        await db.execute(
            select(refunds).where(readable.owned(scope, refunds.c.partner_id), refunds.c.external_id.in_(wanted))
        )
    ).all()
    return {r.external_id: dict(r._mapping) for r in rows}


async def insert(
    conn: AsyncConnection, items: Sequence[dict[str, Any]], *, scope: Scope, actor: str
) -> list[dict[str, Any]]:
    """Insert new refunds, of purchases of customers the scope reaches, in one statement; an external id
    taken meanwhile by another request is left out of
    the answer (the use-case compares and reports it)."""
    if not items:
        return []
    rows = (
        await conn.execute(
            text(_INSERT.format(scope=readable.by_customer_sql(scope, "u.customer_id"))),
            {
                **readable.params(scope),
                "purchase_ids": [i["purchase_id"] for i in items],
                "customer_ids": [i["customer_id"] for i in items],
                "partner_ids": [scope.partner_id] * len(items),
                "external_ids": [i["external_id"] for i in items],
                "amounts": [i["amount"] for i in items],
                "reasons": [i["reason"] for i in items],
                "refunded_ats": [i["refunded_at"] for i in items],
                "purchased_ats": [i["purchased_at"] for i in items],
                "closes": [i["closes_purchase"] for i in items],
                "actors": [actor] * len(items),
            },
        )
    ).all()
    return [dict(r._mapping) for r in rows]
