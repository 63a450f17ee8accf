"""The sums behind the economics report (issue 15): per tier (the customers' tier now) over a period, in one
statement, within the caller's scope; domain/economics.py turns them into the report's figures.

The statement reads the summaries kept current by triggers (migrations 0023 and 0024): economics_reach (live
customers per tier and partner) and economics_days (the facts' sums per UTC day, tier now and partner) over the
whole UTC days of the period, so its time depends on days x tiers, not on the customers. Each with its deltas
(economics_reach_deltas, economics_day_deltas): the triggers append what every write changes there, and
``compact`` (a periodic job, infra/economics.py) moves them into the summaries; reading both in one statement,
one snapshot, gives the same sums whether or not a compaction ran (uncompacted deltas only cost time). What
the summaries cannot hold is read from the facts, joined to their customers:

- the partial days at either end, when the period does not start or end at a UTC midnight;
- the handling time of the complaints of the period still running at its end (open, or resolved after it):
  the summaries hold a complaint's seconds once it is resolved; the report counts it until the end of the
  period (or now, while it is open), less the paused time, never below 0. The difference is added here.

The figures are those of summing the facts per customer over live customers (the reference statement kept in
tests/integration/test_economics_summaries.py), except that the handling hours are the tier's seconds / 3600,
not the sum of each customer's seconds / 3600 rounded at 16 significant digits (a difference below 1e-12
hour, far below the report's cents).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from domain.economics import TierTotals
from infra.repos import scope as readable
from infra.repos.base import Executor, Scope

SUMS = "revenue, refunds, benefit_cost, benefit_uses, complaints, complaint_seconds, responses"

# A complaint's seconds as the summaries hold them (0 until resolved) and as the report counts them.
_HELD = (
    "CASE WHEN resolved_at IS NULL THEN 0"
    " ELSE greatest(extract(epoch FROM resolved_at - opened_at) - paused_seconds, 0) END"
)
_COUNTED = (
    "greatest(extract(epoch FROM least(coalesce(resolved_at, now()), CAST(:until AS timestamptz)) - opened_at)"
    " - paused_seconds, 0)"
)


def _edge(table: str, at: str, values: str) -> str:
    between = f"({at} >= :since AND {at} < :lo) OR ({at} >= :hi AND {at} < :until)"
    return f"SELECT customer_id, {values} FROM {table} WHERE {between}"


SQL = f"""
-- from the facts: the partial days at either end, and the time of the complaints running at the end
WITH f(customer_id, {SUMS}) AS (
    {_edge("purchases", "purchased_at", "amount, 0, 0, 0, 0, 0, 0")}
    UNION ALL {_edge("refunds", "refunded_at", "0, amount, 0, 0, 0, 0, 0")}
    UNION ALL {_edge("benefit_redemptions", "redeemed_at", "0, 0, cost, 1, 0, 0, 0")}
    UNION ALL {_edge("complaints", "opened_at", f"0, 0, 0, 0, 1, {_HELD}, 0")}
    UNION ALL {_edge("survey_responses", "submitted_at", "0, 0, 0, 0, 0, 0, 1")}
    UNION ALL
    SELECT customer_id, 0, 0, 0, 0, 0, {_COUNTED} - {_HELD}, 0 FROM complaints
    WHERE resolved_at IS NULL AND opened_at >= :since AND opened_at < :until
    UNION ALL
    SELECT customer_id, 0, 0, 0, 0, 0, {_COUNTED} - {_HELD}, 0 FROM complaints
    WHERE resolved_at > :until AND opened_at >= :since AND opened_at < :until
),
d AS (
    SELECT d.tier, {SUMS} FROM (
        SELECT day, tier, partner_id, {SUMS} FROM economics_days
        UNION ALL SELECT day, tier, partner_id, {SUMS} FROM economics_day_deltas
    ) d
    WHERE d.day >= :lo_day AND d.day < :hi_day{{scope_d}}
    UNION ALL
    SELECT c.tier_code, {", ".join(f"f.{x}" for x in SUMS.split(", "))} FROM f
    JOIN customers c ON c.id = f.customer_id
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL{{scope_c}}
),
s AS (
    SELECT tier, sum(revenue) AS revenue, sum(refunds) AS refunds, sum(benefit_cost) AS benefit_cost,
           sum(benefit_uses) AS benefit_uses, sum(complaints) AS complaints,
           sum(complaint_seconds) AS seconds, sum(responses) AS responses
    FROM d GROUP BY tier
),
n AS (
    SELECT r.tier, sum(r.customers) AS customers FROM (
        SELECT tier, partner_id, customers FROM economics_reach
        UNION ALL SELECT tier, partner_id, customers FROM economics_reach_deltas
    ) r WHERE true{{scope_r}}
    GROUP BY r.tier HAVING sum(r.customers) > 0
)
SELECT n.tier, t.rank, n.customers,
       coalesce(s.revenue, 0) AS revenue, coalesce(s.refunds, 0) AS refunds,
       coalesce(s.benefit_cost, 0) AS benefit_cost, coalesce(s.benefit_uses, 0) AS benefit_uses,
       coalesce(s.complaints, 0) AS complaints, coalesce(s.seconds, 0) / 3600.0 AS hours,
       coalesce(s.responses, 0) AS responses
FROM n
LEFT JOIN s ON s.tier IS NOT DISTINCT FROM n.tier
LEFT JOIN tiers t ON t.code = n.tier AND t.policy_id = (SELECT id FROM tier_policies WHERE status = 'active')
"""


def _midnight(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _statement(since: dt.datetime, until: dt.datetime, scope: Scope) -> tuple[str, dict[str, Any]]:
    """The statement and its parameters (also for bench/economics.py's EXPLAIN)."""
    lo = _midnight(since)
    if lo < since:
        lo += dt.timedelta(days=1)  # the first whole UTC day
    hi = _midnight(until)  # the end of the last whole UTC day
    if hi <= lo:  # no whole day: all from the facts
        lo = hi = until
    sql = SQL.format(
        scope_d=readable.customers_sql(scope, "d"),
        scope_c=readable.customers_sql(scope, "c"),
        scope_r=readable.customers_sql(scope, "r"),
    )
    params = {"since": since, "until": until, "lo": lo, "hi": hi, "lo_day": lo.date(), "hi_day": hi.date()}
    return sql, {**params, **readable.params(scope)}


async def tier_totals(db: Executor, since: dt.datetime, until: dt.datetime, scope: Scope) -> list[TierTotals]:
    """Per tier: customers, revenue, refunds, benefit uses and cost, complaints and handling hours, survey
    responses, over [since, until), of the customers the scope reaches."""
    sql, params = _statement(since, until, scope)
    rows = (await db.execute(text(sql), params)).all()
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


async def compact(db: Executor) -> int | None:
    """Move the summaries' deltas into them (migration 0024's ``economics_compact()``) and say how many delta
    rows it moved; None when another compaction (or a rebuild) holds the lock: that one, or the next run,
    moves them. Run it in a transaction of its own: the lock and the moved deltas go with its commit."""
    moved = (await db.execute(text("SELECT economics_compact()"))).scalar()
    return None if moved is None else int(moved)
