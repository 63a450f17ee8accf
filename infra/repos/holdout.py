"""The data of the benefit holdout's report (issue 15): per upgrade drawn into the holdout (held or treated),
what the customer did from the upgrade to the end of its holdout window (or now, while it runs): net spend,
whether it bought, its mean NPS answer; in one statement within the caller's scope. domain/holdout.py
compares the groups."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text

from infra.repos import scope as readable
from infra.repos.base import Executor, Scope

_SQL = """
WITH a AS (
    SELECT h.customer_id, h.held, h.starts_at, least(h.ends_at, now()) AS stop, h.ends_at <= now() AS complete
    FROM benefit_holdouts h JOIN customers c ON c.id = h.customer_id
    WHERE h.to_tier = :tier AND h.starts_at >= :since AND h.starts_at < :until
      AND c.deleted_at IS NULL AND c.merged_into_id IS NULL{scope}
)
SELECT a.held, a.complete,
       coalesce((SELECT sum(p.amount) FROM purchases p
                 WHERE p.customer_id = a.customer_id AND p.purchased_at > a.starts_at AND p.purchased_at <= a.stop), 0)
       - coalesce((SELECT sum(f.amount) FROM refunds f
                   WHERE f.customer_id = a.customer_id AND f.purchased_at > a.starts_at AND f.purchased_at <= a.stop
                     AND f.refunded_at <= a.stop), 0) AS spend,
       EXISTS (SELECT 1 FROM purchases p
               WHERE p.customer_id = a.customer_id AND p.purchased_at > a.starts_at AND p.purchased_at <= a.stop)
           AS bought,
       (SELECT avg(x.score) FROM survey_answers x
        JOIN survey_responses r ON r.id = x.response_id
        JOIN survey_questions q ON q.id = x.question_id
        WHERE q.kind = 'nps' AND x.score IS NOT NULL AND r.customer_id = a.customer_id
          AND r.submitted_at > a.starts_at AND r.submitted_at <= a.stop) AS nps
FROM a
"""


@dataclass(frozen=True)
class Observation:
    held: bool
    complete: bool  # the holdout window is over
    spend: Decimal  # net spend from the upgrade to the end of the window (or now)
    bought: bool
    nps: float | None


async def observations(
    db: Executor, *, tier: str, since: dt.datetime, until: dt.datetime, scope: Scope
) -> list[Observation]:
    """The upgrades to ``tier`` drawn into the holdout in [since, until), of live customers in scope."""
    rows = (
        await db.execute(
            text(_SQL.format(scope=readable.customers_sql(scope, "c"))),
            {"tier": tier, "since": since, "until": until, **readable.params(scope)},
        )
    ).all()
    return [
        Observation(
            bool(r.held),
            bool(r.complete),
            Decimal(r.spend),
            bool(r.bought),
            float(r.nps) if r.nps is not None else None,
        )
        for r in rows
    ]


async def any_held(db: Executor) -> bool:
    """Whether any customer was ever held out (the fairness report's summaries cannot leave them out)."""
    return bool((await db.execute(text("SELECT EXISTS (SELECT 1 FROM benefit_holdouts WHERE held)"))).scalar_one())
