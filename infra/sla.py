"""SLA policies (versioned: draft → active → retired) and the SLA sweep.

The sweep runs as a procrastinate periodic job (once per tick across all instances): it flags breaches,
escalates and auto-closes with the set-based statements of infra/repos/clocks.py (the one definition of a
breach and of the escalation reason), then re-scores the churn of the customers whose complaints breached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

import procrastinate
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import sla
from domain.errors import Conflict, NotFound
from infra import churn
from infra.job_deps import JobDeps
from infra.repos.base import Executor
from infra.repos.clocks import SystemNotes, auto_close, escalate, mark_breaches
from infra.tables import sla_policies, sla_targets, tier_policies, tiers

log = logging.getLogger("tierwise.sla")


@dataclass(frozen=True)
class SweepReport:
    breached: int
    escalated: int
    closed: int
    customers: tuple[UUID, ...] = ()  # customers whose complaints newly breached (their churn inputs moved)


async def sweep(
    conn: AsyncConnection, *, auto_close_days: int, critical_fraction: float, actor: str = "job:sla"
) -> SweepReport:
    """Mark breaches, escalate, auto-close; then re-score the churn of customers whose complaints breached."""
    notes = SystemNotes.make(auto_close_days=auto_close_days)
    customers = await mark_breaches(conn, actor=actor, notes=notes)
    escalated = await escalate(conn, critical_fraction=critical_fraction, actor=actor, notes=notes)
    closed = await auto_close(conn, days=auto_close_days, actor=actor, notes=notes)
    if customers:
        await churn.refresh(conn, customers)
    return SweepReport(breached=len(customers), escalated=escalated, closed=closed, customers=tuple(customers))


def register_jobs(app: procrastinate.App, deps: JobDeps) -> None:
    """The SLA sweep, every few minutes (``TIERWISE_SLA_SWEEP_CRON``), once per tick across instances."""
    settings = deps.settings

    @app.periodic(cron=settings.sla_sweep_cron, periodic_id="sla-sweep")
    @app.task(name="tierwise.sla_sweep", queue="tierwise", queueing_lock="sla_sweep")
    async def sla_sweep_job(timestamp: int) -> dict[str, int]:
        async with deps.engine.begin() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 0"))
            report = await sweep(
                conn,
                auto_close_days=settings.sla_auto_close_days,
                critical_fraction=settings.sla_escalate_critical_at,
            )
        counts = {k: v for k, v in asdict(report).items() if k != "customers"}
        log.info("sla sweep: %s", counts)
        return counts


# ---------------------------------------------------------------- SLA policies


async def active_tier_codes(db: Executor) -> list[str]:
    stmt = (
        select(tiers.c.code)
        .join(tier_policies, tier_policies.c.id == tiers.c.policy_id)
        .where(tier_policies.c.status == "active")
        .order_by(tiers.c.rank)
    )
    return list((await db.execute(stmt)).scalars())


async def policies(db: Executor, statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    stmt = select(sla_policies).order_by(sla_policies.c.version.desc())
    if statuses:
        stmt = stmt.where(sla_policies.c.status.in_(list(statuses)))
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]


async def targets_of(db: Executor, policy_ids: Sequence[UUID]) -> dict[UUID, list[sla.SlaTarget]]:
    t = sla_targets
    rows = (
        await db.execute(select(t).where(t.c.policy_id.in_(list(policy_ids))).order_by(t.c.tier_code, t.c.severity))
    ).all()
    out: dict[UUID, list[sla.SlaTarget]] = {pid: [] for pid in policy_ids}
    for r in rows:
        out[r.policy_id].append(sla.SlaTarget(r.tier_code, r.severity, r.first_response_minutes, r.resolution_minutes))
    return out


async def create_policy(db: Executor, *, name: str, targets: Sequence[sla.SlaTarget], actor: str) -> UUID:
    """A draft policy with its targets (validated by the caller through domain/sla.py)."""
    policy_id: UUID = (
        await db.execute(
            sla_policies.insert().values(name=name, status="draft", created_by=actor).returning(sla_policies.c.id)
        )
    ).scalar_one()
    await db.execute(
        sla_targets.insert(),
        [
            {
                "policy_id": policy_id,
                "tier_code": t.tier,
                "severity": t.severity,
                "first_response_minutes": t.first_response_minutes,
                "resolution_minutes": t.resolution_minutes,
            }
            for t in targets
        ],
    )
    return policy_id


async def activate_policy(db: Executor, policy_id: UUID, *, actor: str) -> tuple[int, int | None]:
    """Retire the active policy and activate the draft ``policy_id``, one at a time across instances.
    Complaints keep the deadlines of the policy they were opened under. Returns (version, retired version).
    Coverage of the current tiers is checked by the caller (domain/sla.validate_targets) under this lock."""
    await db.execute(text("SELECT pg_advisory_xact_lock(hashtext('tierwise.sla_policy.activate'))"))
    row = (await db.execute(select(sla_policies).where(sla_policies.c.id == policy_id).with_for_update())).first()
    if row is None:
        raise NotFound("no such SLA policy", field="id")
    if row.status != "draft":
        raise Conflict(f"only a draft policy can be activated; version {row.version} is {row.status}", field="id")
    p = sla_policies
    retired = (
        await db.execute(
            update(p)
            .where(p.c.status == "active")
            .values(status="retired", retired_at=func.now())
            .returning(p.c.version)
        )
    ).scalar_one_or_none()
    await db.execute(
        update(p).where(p.c.id == policy_id).values(status="active", activated_at=func.now(), activated_by=actor)
    )
    return int(row.version), retired
