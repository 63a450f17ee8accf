"""Tier rules compiled to SQL, and the set-based re-tier of every customer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.tiers import METRICS, Rule, TierSpec

# SQL for each metric over `customers c LEFT JOIN customer_metrics m`. Only these
# fixed expressions and validated numbers ever reach the SQL text.
METRIC_SQL: dict[str, str] = {
    "spend_12m": "coalesce(m.spend_12m, 0)",
    "orders_12m": "coalesce(m.orders_12m, 0)",
    "lifetime_spend": "coalesce(m.lifetime_spend, 0)",
    "order_count": "coalesce(m.order_count, 0)",
    "days_since_last_purchase": "(extract(epoch from (now() - m.last_purchase_at)) / 86400.0)",
    "tenure_days": "(extract(epoch from (now() - c.created_at)) / 86400.0)",
    "latest_nps": "m.latest_nps",
    "latest_csat": "m.latest_csat",
    "open_complaints": "coalesce(m.open_complaints, 0)",
}
assert set(METRIC_SQL) == set(METRICS)


def _number(value: Any) -> str:
    return repr(float(value))


def rule_sql(rule: Rule) -> str:
    """Compile a *validated* rule to a boolean SQL expression (NULL metrics never satisfy a condition)."""
    ((key, body),) = rule.items()
    if key == "always":
        return "true"
    if key == "score":
        terms = " + ".join(f"coalesce({METRIC_SQL[m]}, 0) * {_number(w)}" for m, w in body["weights"].items())
        return f"(({terms}) >= {_number(body['min'])})"
    parts = []
    for item in body:
        if "metric" in item:
            op = "=" if item["op"] == "==" else item["op"]
            parts.append(f"coalesce({METRIC_SQL[item['metric']]} {op} {_number(item['value'])}, false)")
        else:
            parts.append(rule_sql(item))
    joiner = " AND " if key == "all" else " OR "
    return "(" + joiner.join(parts) + ")"


def entry_tier_sql(tiers: list[TierSpec]) -> str:
    ordered = sorted(tiers, key=lambda t: t.rank, reverse=True)
    base = ordered[-1]
    whens = " ".join(f"WHEN {rule_sql(t.entry_rule)} THEN '{t.code}'" for t in ordered[:-1])
    return f"CASE {whens} ELSE '{base.code}' END" if whens else f"'{base.code}'"


def metrics_json_sql() -> str:
    pairs = ", ".join(f"'{name}', {expr}" for name, expr in METRIC_SQL.items())
    return f"jsonb_build_object({pairs})"


async def active_policy(conn: AsyncConnection) -> tuple[int, list[TierSpec]] | None:
    rows = (
        await conn.execute(
            text(
                "SELECT p.version, t.code, t.name, t.rank, t.entry_rule, t.retain_rule "
                "FROM tier_policies p JOIN tiers t ON t.policy_id = p.id WHERE p.status = 'active' ORDER BY t.rank"
            )
        )
    ).all()
    if not rows:
        return None
    return rows[0].version, [TierSpec(r.code, r.name, r.rank, r.entry_rule, r.retain_rule) for r in rows]


async def retier_all(conn: AsyncConnection, actor: str = "system") -> int:
    """Put every live customer in the tier its metrics enter, in one statement; returns how many changed."""
    return await retier(conn, None, actor=actor)


async def retier(conn: AsyncConnection, customer_ids: Sequence[UUID] | None, *, actor: str = "system") -> int:
    """Re-tier the given customers (all when None) in one set-based statement; returns how many changed.

    Initial assignment and upgrades/downgrades alike write a history row with the
    metric values that decided it.
    """
    policy = await active_policy(conn)
    if policy is None:
        return 0
    version, tiers = policy
    rank: Mapping[str, int] = {t.code: t.rank for t in tiers}
    rank_case = "CASE x.tier " + " ".join(f"WHEN '{c}' THEN {r}" for c, r in rank.items()) + " ELSE -1 END"
    sql = f"""
    WITH evaluated AS (
        SELECT c.id, c.tier_code AS old_tier, {entry_tier_sql(tiers)} AS new_tier, {metrics_json_sql()} AS metrics
        FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id
        WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL AND c.tier_override_code IS NULL
          AND (CAST(:ids AS uuid[]) IS NULL OR c.id = ANY(CAST(:ids AS uuid[])))
    ),
    moved AS (
        UPDATE customers c SET tier_code = e.new_tier, tier_since = now(), tier_policy_version = :version,
               tier_grace_since = NULL
        FROM evaluated e
        WHERE c.id = e.id AND e.old_tier IS DISTINCT FROM e.new_tier
        RETURNING c.id, e.old_tier, e.new_tier, e.metrics
    )
    INSERT INTO tier_changes (customer_id, from_tier, to_tier, policy_version, change_type, reason, metrics, actor)
    SELECT id, old_tier, new_tier, :version,
           CASE WHEN old_tier IS NULL THEN 'initial'
                WHEN (SELECT {rank_case.replace("x.tier", "new_tier")}) >
                     (SELECT {rank_case.replace("x.tier", "old_tier")}) THEN 'upgrade'
                ELSE 'downgrade' END,
           'entry rule of ' || new_tier || ' holds under policy v' || :version,
           metrics, :actor
    FROM moved
    """
    ids = list(customer_ids) if customer_ids is not None else None
    result = await conn.execute(text(sql), {"version": version, "actor": actor, "ids": ids})
    return int(result.rowcount or 0)


async def refresh(conn: AsyncConnection, customer_ids: Sequence[UUID], *, actor: str) -> None:
    """After an event (purchase, complaint, survey answer): recompute the customers' metrics and
    re-evaluate their tier, in the caller's transaction."""
    from infra import metrics

    await metrics.recompute_for(conn, customer_ids)
    await retier(conn, customer_ids, actor=actor)


def register_jobs(app: Any, deps: Any) -> None:
    """The nightly full re-tier: time-based rules (recency, tenure) move tiers without any event."""

    @app.periodic(cron="17 3 * * *", periodic_id="retier-nightly")
    @app.task(name="tierwise.retier_all", queue="tierwise", queueing_lock="retier_all")
    async def retier_all_job(timestamp: int) -> int:
        async with deps.engine.begin() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 0"))
            changed = await retier_all(conn, actor="job:retier")
        return changed
