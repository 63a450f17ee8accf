"""Benefits of tier policies and their uses (issue 15): the benefits of a policy version, copied with a draft,
replaced on a draft; redemptions idempotent on the writer's (partner, external id), what a customer was
charged this month for a per-customer-month benefit, and what a budget has spent in a period."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.benefits import CENT, BenefitSpec, period_bounds
from domain.holdout import Assignment
from infra.repos import scope as readable
from infra.repos.base import Executor, Scope
from infra.tables import benefit_holdouts, benefit_redemptions, benefits, customers, tier_policies

r = benefit_redemptions

_COLUMNS = ("code", "name", "kind", "cost_model", "cost_value", "tiers", "budget", "budget_period", "description")


def _percent(value: Any) -> Decimal:
    """A percentage without trailing zeros (10, 12.5), never in exponent form."""
    d = Decimal(value).normalize()
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d


def spec_of(row: Any) -> BenefitSpec:
    m = row if isinstance(row, dict) else row._mapping
    return BenefitSpec(
        code=m["code"],
        name=m["name"],
        kind=m["kind"],
        cost_model=m["cost_model"],
        cost_value=_percent(m["cost_value"])
        if m["cost_model"] == "percent_of_order"
        else Decimal(m["cost_value"]).quantize(CENT),
        tiers=list(m["tiers"]),
        budget=m["budget"],
        budget_period=m["budget_period"],
        description=m["description"],
    )


async def of_policy(db: Executor, policy_id: UUID) -> list[dict[str, Any]]:
    """A policy's benefits, by code."""
    rows = (await db.execute(select(benefits).where(benefits.c.policy_id == policy_id).order_by(benefits.c.code))).all()
    return [dict(x._mapping) for x in rows]


async def replace(db: Executor, policy_id: UUID, specs: Sequence[BenefitSpec]) -> None:
    """Every benefit of a (locked, draft) policy replaced by ``specs``."""
    await db.execute(delete(benefits).where(benefits.c.policy_id == policy_id))
    if specs:
        await db.execute(
            insert(benefits),
            [{"policy_id": policy_id, **{c: getattr(s, c) for c in _COLUMNS}} for s in specs],
        )


async def copy(db: Executor, source_id: UUID, target_id: UUID) -> None:
    """A new draft starts with the benefits and the holdout of the policy it copies."""
    cols = ", ".join(_COLUMNS)
    await db.execute(
        text(
            f"INSERT INTO benefits (policy_id, {cols}) SELECT :target, {cols} FROM benefits WHERE policy_id = :source"
        ),
        {"source": source_id, "target": target_id},
    )
    await db.execute(
        text(
            "UPDATE tier_policies t SET holdout_share = s.holdout_share, holdout_days = s.holdout_days"
            " FROM tier_policies s WHERE s.id = :source AND t.id = :target"
        ),
        {"source": source_id, "target": target_id},
    )


async def set_holdout(db: Executor, policy_id: UUID, share: Decimal, days: int) -> None:
    """The holdout of a (locked, draft) policy."""
    await db.execute(
        tier_policies.update().where(tier_policies.c.id == policy_id).values(holdout_share=share, holdout_days=days)
    )


async def policy_row(db: Executor, policy_id: UUID | None) -> dict[str, Any] | None:
    """A policy (the active one when ``policy_id`` is None): id, version, status, activated_at, holdout."""
    cond = tier_policies.c.status == "active" if policy_id is None else tier_policies.c.id == policy_id
    row = (
        await db.execute(
            select(
                tier_policies.c.id,
                tier_policies.c.version,
                tier_policies.c.status,
                tier_policies.c.activated_at,
                tier_policies.c.holdout_share,
                tier_policies.c.holdout_days,
            ).where(cond)
        )
    ).first()
    return dict(row._mapping) if row else None


async def previous_active(db: Executor, activated_at: dt.datetime) -> dict[str, Any] | None:
    """The policy that was active before one activated at ``activated_at``."""
    row = (
        await db.execute(
            select(tier_policies.c.id, tier_policies.c.version)
            .where(tier_policies.c.activated_at < activated_at)
            .order_by(tier_policies.c.activated_at.desc())
            .limit(1)
        )
    ).first()
    return dict(row._mapping) if row else None


# ---------------------------------------------------------------- redemptions


async def customers_with_tier(conn: AsyncConnection, ids: Sequence[UUID], scope: Scope) -> dict[UUID, str | None]:
    """Live customers the scope reaches, locked (a customer's uses in one month are decided one after the
    other), with their tier now."""
    rows = (
        await conn.execute(
            select(customers.c.id, customers.c.tier_code)
            .where(
                customers.c.id.in_(sorted(set(ids), key=str)),
                customers.c.deleted_at.is_(None),
                customers.c.merged_into_id.is_(None),
                readable.customers(scope),
            )
            .order_by(customers.c.id)
            .with_for_update()
        )
    ).all()
    return {x.id: x.tier_code for x in rows}


async def held_out(db: Executor, ids: Sequence[UUID]) -> dict[UUID, list[Assignment]]:
    """The holdouts (held group only) of these customers, whatever their window: a use is checked against the
    window at its own time."""
    if not ids:
        return {}
    h = benefit_holdouts
    rows = (
        await db.execute(
            select(h.c.customer_id, h.c.from_tier, h.c.to_tier, h.c.starts_at, h.c.ends_at)
            .where(h.c.held, h.c.customer_id.in_(sorted(set(ids), key=str)))
            .order_by(h.c.customer_id, h.c.starts_at)
        )
    ).all()
    out: dict[UUID, list[Assignment]] = {}
    for x in rows:
        out.setdefault(x.customer_id, []).append(Assignment(True, x.from_tier, x.to_tier, x.starts_at, x.ends_at))
    return out


async def charged_this_month(
    db: Executor, pairs: Sequence[tuple[UUID, str]], month_starts: Sequence[dt.datetime]
) -> set[tuple[UUID, str, dt.datetime]]:
    """Of (customer, benefit code) pairs, those with a use in the month starting at each given start."""
    if not pairs:
        return set()
    conds = [
        and_(
            r.c.customer_id == c,
            r.c.benefit_code == b,
            r.c.redeemed_at >= m,
            r.c.redeemed_at < period_bounds("month", m)[1],
        )
        for (c, b), m in zip(pairs, month_starts, strict=True)
    ]
    rows = (await db.execute(select(r.c.customer_id, r.c.benefit_code, r.c.redeemed_at).where(or_(*conds)))).all()
    out: set[tuple[UUID, str, dt.datetime]] = set()
    for x in rows:
        at = x.redeemed_at.astimezone(dt.UTC)
        out.add((x.customer_id, x.benefit_code, dt.datetime(at.year, at.month, 1, tzinfo=dt.UTC)))
    return out


async def spent(
    db: Executor, periods: Sequence[tuple[str, str, dt.date, dt.date]]
) -> dict[tuple[str, str, dt.date, dt.date], Decimal]:
    """What uses of a benefit by customers of one tier (at the use) cost in each of ``periods`` (benefit code,
    tier, first day, day after the last; UTC days), in one statement over the daily spending kept by migration
    0025's triggers (compacted days and the deltas not yet compacted): its time does not grow with the uses."""
    wanted = list(dict.fromkeys(periods))
    if not wanted:
        return {}
    rows = (
        await db.execute(
            text(
                "SELECT p.n, coalesce((SELECT sum(cost) FROM ("
                " SELECT d.cost FROM benefit_spend_days d"
                "  WHERE d.benefit_code = p.code AND d.tier = p.tier AND d.day >= p.lo AND d.day < p.hi"
                " UNION ALL SELECT x.cost FROM benefit_spend_deltas x"
                "  WHERE x.benefit_code = p.code AND x.tier = p.tier AND x.day >= p.lo AND x.day < p.hi) s), 0)"
                " AS total"
                " FROM unnest(CAST(:codes AS text[]), CAST(:tiers AS text[]), CAST(:los AS date[]),"
                " CAST(:his AS date[])) WITH ORDINALITY AS p(code, tier, lo, hi, n)"
            ),
            {
                "codes": [k[0] for k in wanted],
                "tiers": [k[1] for k in wanted],
                "los": [k[2] for k in wanted],
                "his": [k[3] for k in wanted],
            },
        )
    ).all()
    return {wanted[int(r.n) - 1]: Decimal(r.total) for r in rows}


async def compact_spend(db: Executor) -> int | None:
    """Move the daily spending's deltas into it (migration 0025's ``benefit_spend_compact()``): the delta rows
    moved, None when another compaction (or a rebuild) holds its lock. Run it in a transaction of its own."""
    moved = (await db.execute(text("SELECT benefit_spend_compact()"))).scalar()
    return None if moved is None else int(moved)


async def by_external_id(db: Executor, external_ids: Sequence[str], scope: Scope) -> dict[str, dict[str, Any]]:
    """Uses the writer recorded before, by external id."""
    wanted = list(dict.fromkeys(external_ids))
    if not wanted:
        return {}
    rows = (await db.execute(select(r).where(readable.owned(scope, r.c.partner_id), r.c.external_id.in_(wanted)))).all()
    return {x.external_id: dict(x._mapping) for x in rows}


async def insert_redemptions(
    conn: AsyncConnection, items: Sequence[dict[str, Any]], *, scope: Scope, actor: str
) -> list[dict[str, Any]]:
    """New uses by customers the scope reaches, in one statement; an external id taken meanwhile is left
    out of the answer."""
    if not items:
        return []
    stmt = text(
        """
        INSERT INTO benefit_redemptions (benefit_id, benefit_code, policy_version, customer_id, partner_id, external_id,
                                         tier_code, order_amount, cost, redeemed_at, actor)
        SELECT u.* FROM unnest(CAST(:benefit_ids AS uuid[]), CAST(:codes AS text[]), CAST(:versions AS integer[]),
                             CAST(:customer_ids AS uuid[]), CAST(:partner_ids AS uuid[]), CAST(:external_ids AS text[]),
                             CAST(:tiers AS text[]), CAST(:orders AS numeric[]), CAST(:costs AS numeric[]),
                             CAST(:ats AS timestamptz[]), CAST(:actors AS text[]))
            AS u(benefit_id, benefit_code, policy_version, customer_id, partner_id, external_id, tier_code,
                 order_amount, cost, redeemed_at, actor)
        WHERE true"""
        + readable.by_customer_sql(scope, "u.customer_id")
        + """
        ON CONFLICT (partner_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
        RETURNING benefit_redemptions.*
        """
    )
    rows = (
        await conn.execute(
            stmt,
            {
                "benefit_ids": [i["benefit_id"] for i in items],
                "codes": [i["benefit_code"] for i in items],
                "versions": [i["policy_version"] for i in items],
                "customer_ids": [i["customer_id"] for i in items],
                **readable.params(scope),
                "partner_ids": [scope.partner_id] * len(items),
                "external_ids": [i["external_id"] for i in items],
                "tiers": [i["tier_code"] for i in items],
                "orders": [i["order_amount"] for i in items],
                "costs": [i["cost"] for i in items],
                "ats": [i["redeemed_at"] for i in items],
                "actors": [actor] * len(items),
            },
        )
    ).all()
    return [dict(x._mapping) for x in rows]


async def usage_since(db: Executor, since: dt.datetime) -> dict[str, dict[str, Any]]:
    """Per benefit code since ``since``: uses, distinct (customer, month) pairs, order total."""
    rows = (
        await db.execute(
            text(
                "SELECT benefit_code, count(*) AS uses,"
                " count(DISTINCT (customer_id, date_trunc('month', redeemed_at AT TIME ZONE 'UTC')))"
                " AS customer_months,"
                " coalesce(sum(order_amount), 0) AS order_total"
                " FROM benefit_redemptions WHERE redeemed_at >= :since GROUP BY benefit_code"
            ),
            {"since": since},
        )
    ).all()
    return {x.benefit_code: dict(x._mapping) for x in rows}


async def customers_per_tier(db: Executor) -> dict[str, int]:
    """Live customers per tier now."""
    rows = (
        await db.execute(
            text(
                "SELECT tier_code, count(*) AS n FROM customers WHERE deleted_at IS NULL AND merged_into_id IS NULL"
                " AND tier_code IS NOT NULL GROUP BY tier_code"
            )
        )
    ).all()
    return {x.tier_code: int(x.n) for x in rows}
