"""Tier policies (drafts, activation), tiers, tier history, the inputs of tier explanations, full re-tier
runs and the tier reports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import select, text

from domain.errors import Conflict, IllegalTransition, NotFound, ValidationFailed
from domain.tiers import METRICS, PolicySpec
from infra.repos import scope as readable
from infra.repos.base import Executor, Page, Scope, first_n_per_parent
from infra.tables import tier_changes, tier_policies, tier_runs, tiers

# SQL for each metric over `customers c LEFT JOIN customer_metrics m`: the tier engine (infra/tiering.py)
# decides from these and the explanations read them. Only these fixed expressions and validated numbers
# ever reach the SQL text.
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


async def policies(db: Executor, statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    stmt = select(tier_policies).order_by(tier_policies.c.version.desc())
    if statuses:
        stmt = stmt.where(tier_policies.c.status.in_(list(statuses)))
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]


async def policy(db: Executor, policy_id: UUID) -> dict[str, Any] | None:
    row = (await db.execute(select(tier_policies).where(tier_policies.c.id == policy_id))).first()
    return dict(row._mapping) if row else None


async def tiers_of(db: Executor, policy_ids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    rows = (await db.execute(select(tiers).where(tiers.c.policy_id.in_(list(policy_ids))).order_by(tiers.c.rank))).all()
    out: dict[UUID, list[dict[str, Any]]] = {pid: [] for pid in policy_ids}
    for r in rows:
        out[r.policy_id].append(dict(r._mapping))
    return out


_ACTIVE_TIERS = (  # built once: read by every request that shows a tier
    select(tiers).join(tier_policies, tier_policies.c.id == tiers.c.policy_id).where(tier_policies.c.status == "active")
)


async def active_tiers(db: Executor) -> dict[str, dict[str, Any]]:
    return {r.code: dict(r._mapping) for r in (await db.execute(_ACTIVE_TIERS)).all()}


async def history_for_customers(db: Executor, customer_ids: list[UUID], *, first: int) -> dict[UUID, Page]:
    t = tier_changes
    return await first_n_per_parent(
        db,
        "tiers.history_for_customers",
        lambda: (select(t), t.c.customer_id, [t.c.changed_at.desc(), t.c.id.desc()]),
        customer_ids,
        first,
    )


# ---------------------------------------------------------------- drafts and activation


async def _audit(db: Executor, actor: str, action: str, policy_id: UUID, before: Any, after: Any) -> None:
    await db.execute(
        text(
            "INSERT INTO audit_log (actor, action, target_type, target_ids, before, after) "
            "VALUES (:actor, :action, 'TierPolicy', :ids, CAST(:before AS jsonb), CAST(:after AS jsonb))"
        ),
        {
            "actor": actor,
            "action": action,
            "ids": [str(policy_id)],
            "before": json.dumps(before, default=str),
            "after": json.dumps(after, default=str),
        },
    )


def _summary(spec: PolicySpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "graceDays": spec.grace_days,
        "minStayDays": spec.min_stay_days,
        "spendWindowDays": spec.spend_window_days,
        "tiers": [
            {"code": t.code, "name": t.name, "rank": t.rank, "entryRule": t.entry_rule, "retainRule": t.retain_rule}
            for t in sorted(spec.tiers, key=lambda t: t.rank)
        ],
    }


async def _insert_tiers(db: Executor, policy_id: UUID, spec: PolicySpec) -> None:
    for t in spec.tiers:
        await db.execute(
            text(
                "INSERT INTO tiers (policy_id, code, name, rank, entry_rule, retain_rule, benefits) "
                "VALUES (:p, :c, :n, :r, CAST(:e AS jsonb), CAST(:t AS jsonb), :b)"
            ),
            {
                "p": policy_id,
                "c": t.code,
                "n": t.name.strip(),
                "r": t.rank,
                "e": json.dumps(t.entry_rule),
                "t": json.dumps(t.retain_rule),
                "b": list(spec.benefits.get(t.code, [])),
            },
        )


async def create_draft(db: Executor, spec: PolicySpec, *, description: str | None, actor: str) -> UUID:
    """A new draft (validated by the caller through ``domain.tiers.validate_policy``)."""
    row = (
        await db.execute(
            text(
                "INSERT INTO tier_policies (name, description, status, grace_days, min_stay_days, spend_window_days,"
                " created_by, updated_by) VALUES (:name, :description, 'draft', :grace, :stay, :window, :actor, :actor)"
                " RETURNING id"
            ),
            {
                "name": spec.name.strip(),
                "description": description,
                "grace": spec.grace_days,
                "stay": spec.min_stay_days,
                "window": spec.spend_window_days,
                "actor": actor,
            },
        )
    ).one()
    policy_id: UUID = row.id
    await _insert_tiers(db, policy_id, spec)
    await _audit(db, actor, "tier_policy_created", policy_id, None, _summary(spec))
    return policy_id


async def _locked_draft(db: Executor, policy_id: UUID, expected_revision: int | None) -> dict[str, Any]:
    row = (await db.execute(select(tier_policies).where(tier_policies.c.id == policy_id).with_for_update())).first()
    if row is None:
        raise NotFound("no such tier policy", field="id")
    if row.status != "draft":
        raise IllegalTransition(f"policy v{row.version} is {row.status}: only a draft can change", field="id")
    if expected_revision is not None and row.revision != expected_revision:
        raise Conflict(
            f"the draft was changed meanwhile (revision {row.revision}, expected {expected_revision})",
            field="expectedRevision",
        )
    return dict(row._mapping)


async def update_draft(
    db: Executor,
    policy_id: UUID,
    spec: PolicySpec,
    *,
    expected_revision: int,
    description: str | None,
    replace_tiers: bool,
    actor: str,
    before: PolicySpec,
) -> None:
    await _locked_draft(db, policy_id, expected_revision)
    await db.execute(
        text(
            "UPDATE tier_policies SET name = :name, description = :description, grace_days = :grace,"
            " min_stay_days = :stay, spend_window_days = :window, revision = revision + 1, updated_at = now(),"
            " updated_by = :actor WHERE id = :id"
        ),
        {
            "id": policy_id,
            "name": spec.name.strip(),
            "description": description,
            "grace": spec.grace_days,
            "stay": spec.min_stay_days,
            "window": spec.spend_window_days,
            "actor": actor,
        },
    )
    if replace_tiers:
        await db.execute(text("DELETE FROM tiers WHERE policy_id = :id"), {"id": policy_id})
        await _insert_tiers(db, policy_id, spec)
    await _audit(db, actor, "tier_policy_updated", policy_id, _summary(before), _summary(spec))


async def discard_draft(db: Executor, policy_id: UUID, *, expected_revision: int | None, actor: str) -> None:
    row = await _locked_draft(db, policy_id, expected_revision)
    await db.execute(text("DELETE FROM tier_policies WHERE id = :id"), {"id": policy_id})
    await _audit(db, actor, "tier_policy_discarded", policy_id, {"version": row["version"], "name": row["name"]}, None)


async def activate(
    db: Executor, policy_id: UUID, spec: PolicySpec, *, expected_revision: int | None, actor: str
) -> int | None:
    """Make a draft the one active policy and retire the previous one (returned: its version), in the caller's
    transaction. The unique index on the active status keeps it to exactly one, whatever runs concurrently."""
    await db.execute(text("LOCK TABLE tier_policies IN SHARE ROW EXCLUSIVE MODE"))
    await _locked_draft(db, policy_id, expected_revision)
    codes = [t.code for t in spec.tiers]
    stranded = (
        await db.execute(
            text(
                "SELECT count(*) FROM customers WHERE tier_override_code IS NOT NULL AND deleted_at IS NULL"
                " AND (tier_override_expires_at IS NULL OR tier_override_expires_at > now())"
                " AND tier_override_code <> ALL(CAST(:codes AS text[]))"
            ),
            {"codes": codes},
        )
    ).scalar_one()
    if stranded:
        raise ValidationFailed(
            f"{stranded} customers have a manual override to a tier this policy does not have: "
            "clear those overrides first",
            field="id",
        )
    previous = (
        await db.execute(
            text(
                "UPDATE tier_policies SET status = 'retired', retired_at = now(), retired_by = :actor,"
                " updated_at = now() WHERE status = 'active' RETURNING version"
            ),
            {"actor": actor},
        )
    ).scalar()
    await db.execute(
        text(
            "UPDATE tier_policies SET status = 'active', activated_at = now(), activated_by = :actor,"
            " updated_at = now() WHERE id = :id"
        ),
        {"id": policy_id, "actor": actor},
    )
    await _audit(db, actor, "tier_policy_activated", policy_id, {"retiredVersion": previous}, _summary(spec))
    return int(previous) if previous is not None else None


async def customer_count(db: Executor) -> int:
    return int((await db.execute(text("SELECT count(*) FROM customers"))).scalar_one())


# ---------------------------------------------------------------- explanations


async def explanation_inputs(db: Executor, customer_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    """Per customer: its tier state and its metrics, computed by the same SQL expressions the engine uses."""
    metric_cols = ", ".join(f"{expr} AS {name}" for name, expr in METRIC_SQL.items())
    rows = (
        await db.execute(
            text(
                "SELECT c.id, c.tier_code, c.tier_since, c.tier_grace_since, c.tier_override_code,"
                " c.tier_override_reason, c.tier_override_expires_at, c.tier_override_by, now() AS now,"
                f" {metric_cols} FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id"
                " WHERE c.id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": list(customer_ids)},
        )
    ).all()
    return {r.id: dict(r._mapping) for r in rows}


# ---------------------------------------------------------------- full re-tier runs


async def runs(db: Executor, *, first: int) -> list[dict[str, Any]]:
    stmt = select(tier_runs).order_by(tier_runs.c.started_at.desc(), tier_runs.c.id.desc()).limit(first)
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]


# ---------------------------------------------------------------- reports


async def distribution(db: Executor, scope: Scope) -> list[dict[str, Any]]:
    """Live customers and their spend in the policy window, per current tier."""
    rows = (
        await db.execute(
            text(
                "SELECT c.tier_code, count(*) AS customers, coalesce(sum(m.spend_12m), 0) AS revenue"
                " FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id"
                f" WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL{readable.customers_sql(scope, 'c')}"
                " GROUP BY c.tier_code"
            ),
            readable.params(scope),
        )
    ).all()
    return [dict(r._mapping) for r in rows]


async def migrations(
    db: Executor, since: dt.datetime, until: dt.datetime, scope: Scope
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """For every live customer with a tier at ``until``: its tier at ``since`` (None: not tiered yet) and at
    ``until`` (the latest history row before each moment), counted per pair; and the history rows of the
    period by change type."""
    params: Mapping[str, Any] = {"since": since, "until": until, **readable.params(scope)}
    cells = (
        await db.execute(
            text(
                f"""
                WITH live AS (
                    SELECT c.id FROM customers c
                    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL{readable.customers_sql(scope, "c")}
                ),
                at_end AS (
                    SELECT DISTINCT ON (customer_id) customer_id, to_tier FROM tier_changes
                    WHERE changed_at < :until ORDER BY customer_id, changed_at DESC, id DESC
                ),
                at_start AS (
                    SELECT DISTINCT ON (customer_id) customer_id, to_tier FROM tier_changes
                    WHERE changed_at < :since ORDER BY customer_id, changed_at DESC, id DESC
                )
                SELECT s.to_tier AS from_tier, e.to_tier AS to_tier, count(*) AS customers
                FROM at_end e JOIN live l ON l.id = e.customer_id
                LEFT JOIN at_start s ON s.customer_id = e.customer_id
                GROUP BY 1, 2 ORDER BY 1 NULLS FIRST, 2
                """
            ),
            params,
        )
    ).all()
    kinds = (
        await db.execute(
            text(
                "SELECT t.change_type, count(*) AS n FROM tier_changes t JOIN customers c ON c.id = t.customer_id"
                " WHERE t.changed_at >= :since AND t.changed_at < :until"
                f" AND c.deleted_at IS NULL AND c.merged_into_id IS NULL{readable.customers_sql(scope, 'c')} GROUP BY 1"
            ),
            params,
        )
    ).all()
    return [dict(r._mapping) for r in cells], {r.change_type: int(r.n) for r in kinds}


async def lock_draft(db: Executor, policy_id: UUID, expected_revision: int | None) -> dict[str, Any]:
    """A draft policy locked for a change of its own or of what hangs off it (its benefits: issue 15);
    NotFound, IllegalTransition (not a draft) or Conflict (stale ``expected_revision``) otherwise."""
    return await _locked_draft(db, policy_id, expected_revision)


async def touch_draft(db: Executor, policy_id: UUID, *, actor: str, action: str, before: Any, after: Any) -> int:
    """A change of what hangs off a locked draft: its revision goes up, the change is audited; the new revision."""
    revision = (
        await db.execute(
            text(
                "UPDATE tier_policies SET revision = revision + 1, updated_at = now(), updated_by = :actor"
                " WHERE id = :id RETURNING revision"
            ),
            {"id": policy_id, "actor": actor},
        )
    ).scalar_one()
    await _audit(db, actor, action, policy_id, before, after)
    return int(revision)
