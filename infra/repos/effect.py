"""The data of a tier's measured effect (issue 15): per customer near a spend threshold, its spend over the
spend window before a start date (the running variable) and what it did in the window after (spend, whether
it bought at all, its NPS), in one statement within the caller's scope. domain/effect.py estimates the jump."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text

from infra.repos import scope as readable
from infra.repos.base import Executor, Scope

_SQL = """
WITH c AS (
    SELECT c.id FROM customers c
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL{scope}
),
before AS (  -- the running variable: spend over the spend window up to the start, net of refunds
    SELECT p.customer_id, sum(p.amount) AS spend FROM purchases p
    WHERE p.purchased_at > CAST(:start AS timestamptz) - make_interval(days => :spend_days) AND p.purchased_at <= :start
    GROUP BY p.customer_id
),
refunded AS (
    SELECT f.customer_id, sum(f.amount) AS amount FROM refunds f
    WHERE f.purchased_at > CAST(:start AS timestamptz) - make_interval(days => :spend_days) AND f.purchased_at <= :start
      AND f.refunded_at <= :start
    GROUP BY f.customer_id
),
x AS (
    SELECT c.id, coalesce(b.spend, 0) - coalesce(r.amount, 0) AS spend
    FROM c LEFT JOIN before b ON b.customer_id = c.id LEFT JOIN refunded r ON r.customer_id = c.id
),
near AS (SELECT * FROM x WHERE spend > :low AND spend < :high),
after AS (
    SELECT p.customer_id, sum(p.amount) AS spend, count(*) AS orders FROM purchases p
    WHERE p.customer_id IN (SELECT id FROM near) AND p.purchased_at > :start AND p.purchased_at <= :stop
    GROUP BY p.customer_id
),
after_refunds AS (
    SELECT f.customer_id, sum(f.amount) AS amount FROM refunds f
    WHERE f.customer_id IN (SELECT id FROM near) AND f.purchased_at > :start AND f.purchased_at <= :stop
    GROUP BY f.customer_id
),
nps AS (
    SELECT r.customer_id, avg(a.score) AS score FROM survey_answers a
    JOIN survey_responses r ON r.id = a.response_id
    JOIN survey_questions q ON q.id = a.question_id
    WHERE q.kind = 'nps' AND a.score IS NOT NULL AND r.customer_id IN (SELECT id FROM near)
      AND r.submitted_at > :start AND r.submitted_at <= :stop
    GROUP BY r.customer_id
)
SELECT n.spend AS running, coalesce(a.spend, 0) - coalesce(f.amount, 0) AS spend_after,
       coalesce(a.orders, 0) AS orders_after, s.score AS nps
FROM near n
LEFT JOIN after a ON a.customer_id = n.id
LEFT JOIN after_refunds f ON f.customer_id = n.id
LEFT JOIN nps s ON s.customer_id = n.id
"""


@dataclass(frozen=True)
class Observation:
    running: Decimal  # spend over the window before the start
    spend_after: Decimal
    bought_after: bool
    nps: float | None


async def observations(
    db: Executor,
    *,
    start: dt.datetime,
    stop: dt.datetime,
    spend_days: int,
    low: Decimal,
    high: Decimal,
    scope: Scope,
) -> list[Observation]:
    """Customers (live, in scope) whose spend over ``spend_days`` up to ``start`` lies in
    (low, high), with their spend, whether they bought, and their mean NPS in (start, stop]."""
    rows = (
        await db.execute(
            text(_SQL.format(scope=readable.customers_sql(scope, "c"))),
            {
                "start": start,
                "stop": stop,
                "spend_days": spend_days,
                "low": low,
                "high": high,
                **readable.params(scope),
            },
        )
    ).all()
    return [
        Observation(
            Decimal(r.running),
            Decimal(r.spend_after),
            int(r.orders_after) > 0,
            float(r.nps) if r.nps is not None else None,
        )
        for r in rows
    ]
