"""Purchases: idempotent batch ingest on the partner's external id (the use-case runs the after-change step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import Invalid, ValidationFailed
from infra.repos import scope as readable
from infra.repos.base import Executor, Page, Scope, first_n_per_parent
from infra.tables import customers, purchases

p = purchases

_INSERT = text(
    """
    INSERT INTO purchases (customer_id, partner_id, external_id, amount, currency, channel, purchased_at)
    SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:partner_ids AS uuid[]), CAST(:external_ids AS text[]),
                         CAST(:amounts AS numeric[]), CAST(:currencies AS text[]), CAST(:channels AS text[]),
                         CAST(:purchased_ats AS timestamptz[]))
    ON CONFLICT (partner_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING purchases.*
    """
)


_RESOLVE_REFS = """
    SELECT DISTINCT ON (u.ref) u.ref, coalesce(c.merged_into_id, c.id) AS id
    FROM unnest(CAST(:refs AS text[])) AS u(ref)
    JOIN customers c ON c.external_ref = u.ref AND {owned} AND c.deleted_at IS NULL
    ORDER BY u.ref
    """


async def resolve_external_refs(db: Executor, refs: Sequence[str], scope: Scope) -> dict[str, UUID]:
    """The customers of a batch by the caller's own references (``scope.owned``), in one statement (a
    merged customer's reference gives its survivor); unknown references are absent."""
    wanted = list(dict.fromkeys(refs))
    if not wanted:
        return {}
    stmt = text(_RESOLVE_REFS.format(owned=readable.owned_sql(scope, "c.partner_id")))
    rows = (await db.execute(stmt, {"refs": wanted, **readable.params(scope)})).all()
    return {r.ref: r.id for r in rows}


async def record(
    conn: AsyncConnection, items: Sequence[dict[str, Any]], *, scope: Scope
) -> tuple[list[dict[str, Any]], int]:
    """Insert purchases not seen before (by partner + external id), in the caller's transaction. Returns
    (each item's purchase row, how many were new). Items whose external id was recorded before return the
    stored purchase, unchanged. Metrics, tier and churn are the use-case's after-change step."""
    customer_ids = sorted({i["customer_id"] for i in items}, key=str)
    visible = select(customers.c.id).where(
        customers.c.id.in_(customer_ids),
        customers.c.deleted_at.is_(None),
        customers.c.merged_into_id.is_(None),
        readable.customers(scope),
    )
    found = {r.id for r in (await conn.execute(visible)).all()}
    errors = [
        ValidationFailed("no such customer", field=f"purchases[{n}].customerId")
        for n, i in enumerate(items)
        if i["customer_id"] not in found
    ]
    if errors:
        raise Invalid(errors)
    inserted = (
        await conn.execute(
            _INSERT,
            {
                "customer_ids": [i["customer_id"] for i in items],
                "partner_ids": [scope.partner_id] * len(items),
                "external_ids": [i.get("external_id") for i in items],
                "amounts": [i["amount"] for i in items],
                "currencies": [i["currency"] for i in items],
                "channels": [i.get("channel") for i in items],
                "purchased_ats": [i["purchased_at"] for i in items],
            },
        )
    ).all()
    new_count = len(inserted)
    # New rows come back from the insert; only external ids recorded before are read (replays).
    stored: dict[str, dict[str, Any]] = {r.external_id: dict(r._mapping) for r in inserted if r.external_id}
    seen_before = [e for e in dict.fromkeys(i["external_id"] for i in items if i.get("external_id")) if e not in stored]
    if seen_before:
        rows = (
            await conn.execute(
                select(p).where(
                    readable.owned(scope, p.c.partner_id),
                    p.c.external_id.in_(seen_before),
                )
            )
        ).all()
        stored.update({r.external_id: dict(r._mapping) for r in rows})
    new_without_ext = iter(r.id for r in inserted if r.external_id is None)
    plain: dict[UUID, dict[str, Any]] = {r.id: dict(r._mapping) for r in inserted if r.external_id is None}
    result = [stored[i["external_id"]] if i.get("external_id") else plain[next(new_without_ext)] for i in items]
    return result, new_count


async def latest_for_customers(db: Executor, customer_ids: list[UUID], *, first: int) -> dict[UUID, Page]:
    return await first_n_per_parent(
        db,
        "purchases.latest_for_customers",
        lambda: (select(p), p.c.customer_id, [p.c.purchased_at.desc(), p.c.id.desc()]),
        customer_ids,
        first,
    )
