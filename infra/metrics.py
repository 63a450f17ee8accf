"""Customer metrics recomputed from the source tables, set-based.

Each source table is aggregated once (``GROUP BY customer_id``) and the results are
joined onto the customers, so a full recompute is a few hash aggregates and one
upsert, whatever the number of customers. ``recompute_for`` runs the same SQL with
every scan restricted to the given customers, ``recompute_range`` to a range of ids
(the batches of a full re-tier). Spend and orders count over the active tier
policy's spend window, net of refunds (counted in the window of the purchase they give back).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

WINDOW = "interval '365 days'"
# Spend and orders count over the active tier policy's spend window (365 days when none is active);
# a scalar subquery, evaluated once per statement.
SPEND_WINDOW = (
    "make_interval(days => (SELECT coalesce(max(spend_window_days), 365) FROM tier_policies WHERE status = 'active'))"
)

# `{scope_c}` / `{scope}` are replaced by nothing (every customer) or by a filter on
# the given ids; nothing else is ever formatted into this text.
_RECOMPUTE_SQL = f"""
WITH purchase_totals AS (
    SELECT customer_id,
           sum(amount) AS lifetime_spend,
           count(*) AS order_count,
           coalesce(sum(amount) FILTER (WHERE purchased_at > now() - {SPEND_WINDOW}), 0) AS spend_12m,
           count(*) FILTER (WHERE purchased_at > now() - {SPEND_WINDOW}) AS orders_12m,
           min(purchased_at) AS first_purchase_at,
           max(purchased_at) AS last_purchase_at
    FROM purchases
    {{scope}}
    GROUP BY customer_id
),
-- Refunds (issue 15) give back spend of the purchase they refund, in that purchase's window; a purchase
-- refunded to zero is no longer an order. A small table of its own: purchases keep their index-only scan.
refund_totals AS (
    SELECT customer_id,
           sum(amount) AS refunded,
           count(*) FILTER (WHERE closes_purchase) AS closed_orders,
           coalesce(sum(amount) FILTER (WHERE purchased_at > now() - {SPEND_WINDOW}), 0) AS refunded_12m,
           count(*) FILTER (WHERE closes_purchase AND purchased_at > now() - {SPEND_WINDOW}) AS closed_orders_12m
    FROM refunds
    {{scope}}
    GROUP BY customer_id
),
complaint_totals AS (
    SELECT customer_id,
           count(*) FILTER (WHERE status NOT IN ('resolved', 'closed')) AS open_complaints,
           count(*) FILTER (WHERE opened_at > now() - {WINDOW}) AS complaints_12m
    FROM complaints
    {{scope}}
    GROUP BY customer_id
),
latest_scores AS (
    SELECT r.customer_id,
           (array_agg(a.score ORDER BY r.submitted_at DESC, a.id DESC)
                FILTER (WHERE q.kind = 'nps'))[1] AS latest_nps,
           (array_agg(a.score ORDER BY r.submitted_at DESC, a.id DESC)
                FILTER (WHERE q.kind = 'csat'))[1] AS latest_csat
    FROM survey_answers a
    JOIN survey_responses r ON r.id = a.response_id
    JOIN survey_questions q ON q.id = a.question_id
    WHERE q.kind IN ('nps', 'csat') AND a.score IS NOT NULL
    {{scope_and}}
    GROUP BY r.customer_id
)
INSERT INTO customer_metrics AS m (
    customer_id, lifetime_spend, order_count, spend_12m, orders_12m,
    first_purchase_at, last_purchase_at, open_complaints, complaints_12m,
    latest_nps, latest_csat, computed_at
)
SELECT c.id,
       coalesce(p.lifetime_spend, 0) - coalesce(f.refunded, 0),
       coalesce(p.order_count, 0) - coalesce(f.closed_orders, 0),
       coalesce(p.spend_12m, 0) - coalesce(f.refunded_12m, 0),
       coalesce(p.orders_12m, 0) - coalesce(f.closed_orders_12m, 0),
       p.first_purchase_at, p.last_purchase_at,
       coalesce(k.open_complaints, 0), coalesce(k.complaints_12m, 0),
       s.latest_nps, s.latest_csat, now()
FROM customers c
LEFT JOIN purchase_totals p ON p.customer_id = c.id
LEFT JOIN refund_totals f ON f.customer_id = c.id
LEFT JOIN complaint_totals k ON k.customer_id = c.id
LEFT JOIN latest_scores s ON s.customer_id = c.id
{{scope_c}}
ON CONFLICT (customer_id) DO UPDATE SET
    lifetime_spend = excluded.lifetime_spend,
    order_count = excluded.order_count,
    spend_12m = excluded.spend_12m,
    orders_12m = excluded.orders_12m,
    first_purchase_at = excluded.first_purchase_at,
    last_purchase_at = excluded.last_purchase_at,
    open_complaints = excluded.open_complaints,
    complaints_12m = excluded.complaints_12m,
    latest_nps = excluded.latest_nps,
    latest_csat = excluded.latest_csat,
    computed_at = excluded.computed_at
{{only_changed}}
"""
# The batches of a full re-tier leave rows whose values did not change alone (most of them, every
# night): ``computed_at`` is then when the values last changed.
_ONLY_CHANGED = """WHERE (m.lifetime_spend, m.order_count, m.spend_12m, m.orders_12m, m.first_purchase_at,
       m.last_purchase_at, m.open_complaints, m.complaints_12m, m.latest_nps, m.latest_csat)
    IS DISTINCT FROM (excluded.lifetime_spend, excluded.order_count, excluded.spend_12m, excluded.orders_12m,
       excluded.first_purchase_at, excluded.last_purchase_at, excluded.open_complaints, excluded.complaints_12m,
       excluded.latest_nps, excluded.latest_csat)"""

_ALL = text(_RECOMPUTE_SQL.format(scope="", scope_and="", scope_c="", only_changed=""))
_SOME: TextClause = text(
    _RECOMPUTE_SQL.format(
        scope="WHERE customer_id = ANY(:ids)",
        scope_and="AND r.customer_id = ANY(:ids)",
        scope_c="WHERE c.id = ANY(:ids)",
        only_changed="",
    )
).bindparams(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))))

_RANGE: TextClause = text(
    _RECOMPUTE_SQL.format(
        scope="WHERE customer_id > :after AND customer_id <= :upto",
        scope_and="AND r.customer_id > :after AND r.customer_id <= :upto",
        scope_c="WHERE c.id > :after AND c.id <= :upto",
        only_changed=_ONLY_CHANGED,
    )
).bindparams(bindparam("after", type_=PG_UUID(as_uuid=True)), bindparam("upto", type_=PG_UUID(as_uuid=True)))


async def recompute_all(conn: AsyncConnection) -> int:
    """Recompute the metrics of every customer; returns the number of rows written."""
    result = await conn.execute(_ALL)
    return int(result.rowcount or 0)


async def recompute_for(conn: AsyncConnection, customer_ids: Sequence[UUID]) -> None:
    """Recompute the metrics of the given customers only (same SQL, scoped to ``ids``)."""
    if not customer_ids:
        return
    await conn.execute(_SOME, {"ids": list(dict.fromkeys(customer_ids))})


async def recompute_range(conn: AsyncConnection, after: UUID, upto: UUID) -> int:
    """Recompute the metrics of the customers with ``after < id <= upto`` (a batch of a full re-tier);
    returns how many rows changed."""
    result = await conn.execute(_RANGE, {"after": after, "upto": upto})
    return int(result.rowcount or 0)
