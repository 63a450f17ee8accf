"""The sums behind the economics report (issue 15): per tier (the customers' tier now) over a period, in one
statement, within the caller's scope; domain/economics.py turns them into the report's figures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import text

from domain.economics import TierTotals
from infra.repos import scope as readable
from infra.repos.base import Executor, Scope

_SQL = """
WITH c AS (
    SELECT c.id, c.tier_code FROM customers c
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL{scope}
),
p AS (
    SELECT customer_id, sum(amount) AS revenue FROM purchases
    WHERE purchased_at >= :since AND purchased_at < :until GROUP BY customer_id
),
r AS (
    SELECT customer_id, sum(amount) AS refunds FROM refunds
    WHERE refunded_at >= :since AND refunded_at < :until GROUP BY customer_id
),
b AS (
    SELECT customer_id, sum(cost) AS cost, count(*) AS uses FROM benefit_redemptions
    WHERE redeemed_at >= :since AND redeemed_at < :until GROUP BY customer_id
),
k AS (  -- handled from opening until resolved (or the end of the period, or now, while open), less paused time
    SELECT customer_id, count(*) AS complaints,
           sum(greatest(
               extract(epoch FROM least(coalesce(resolved_at, now()), CAST(:until AS timestamptz)) - opened_at)
               - paused_seconds, 0)) / 3600.0 AS hours
    FROM complaints
    WHERE opened_at >= :since AND opened_at < :until GROUP BY customer_id
),
s AS (
    SELECT customer_id, count(*) AS responses FROM survey_responses
    WHERE submitted_at >= :since AND submitted_at < :until GROUP BY customer_id
)
SELECT c.tier_code AS tier, t.rank, count(*) AS customers,
       coalesce(sum(p.revenue), 0) AS revenue, coalesce(sum(r.refunds), 0) AS refunds,
       coalesce(sum(b.cost), 0) AS benefit_cost, coalesce(sum(b.uses), 0) AS benefit_uses,
       coalesce(sum(k.complaints), 0) AS complaints, coalesce(sum(k.hours), 0) AS hours,
       coalesce(sum(s.responses), 0) AS responses
FROM c
LEFT JOIN p ON p.customer_id = c.id
LEFT JOIN r ON r.customer_id = c.id
LEFT JOIN b ON b.customer_id = c.id
LEFT JOIN k ON k.customer_id = c.id
LEFT JOIN s ON s.customer_id = c.id
LEFT JOIN tiers t ON t.code = c.tier_code
     AND t.policy_id = (SELECT id FROM tier_policies WHERE status = 'active')
GROUP BY c.tier_code, t.rank
"""


async def tier_totals(db: Executor, since: dt.datetime, until: dt.datetime, scope: Scope) -> list[TierTotals]:
    """Per tier: customers, revenue, refunds, benefit uses and cost, complaints and handling hours, survey
    responses, over [since, until), of the customers the scope reaches."""
    rows = (
        await db.execute(
            text(_SQL.format(scope=readable.customers_sql(scope, "c"))),
            {"since": since, "until": until, **readable.params(scope)},
        )
    ).all()
    return [
        TierTotals(
            tier=r.tier,
            rank=r.rank,
            customers=int(r.customers),
            revenue=Decimal(r.revenue),
            refunds=Decimal(r.refunds),
            benefit_cost=Decimal(r.benefit_cost),
            benefit_uses=int(r.benefit_uses),
            complaints=int(r.complaints),
            complaint_hours=Decimal(r.hours),
            survey_responses=int(r.responses),
        )
        for r in rows
    ]
