"""Use-cases of tiers: activating a policy (moved out of its resolver; it still takes the Info and
returns the GraphQL payload until item 2 of issue 13)."""

from __future__ import annotations

import logging
import time
from uuid import UUID

import procrastinate.exceptions
import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.ids import from_global_id
from api.graphql.tiers.types import ActivateTierPolicyPayload, RetierMode, TierPolicyType, TierRetierType
from domain import tiers as rules
from domain.errors import NotFound
from infra import tiering
from infra.repos import tiers as tiers_repo

log = logging.getLogger("tierwise.tiers")

# Up to this many customers an activation re-tiers them in its own transaction (about a second);
# above, the batched full re-tier runs as a job.
INLINE_RETIER_MAX_CUSTOMERS = 20_000


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


async def _read_back_policy(info: Info[Context, None], policy_id: UUID) -> TierPolicyType | None:
    row = await tiers_repo.policy(_ctx(info).db, policy_id)
    return TierPolicyType.from_row(row) if row else None


async def activate_tier_policy(
    info: Info[Context, None], id: strawberry.ID, expected_revision: int | None
) -> ActivateTierPolicyPayload:
    """Activate a validated draft and re-tier every customer under it: in this transaction for a small
    customer base (``INLINE_RETIER_MAX_CUSTOMERS``), otherwise as the deferred full re-tier job."""
    ctx = _ctx(info)
    policy_id = from_global_id(id, "TierPolicy", field="id")[1]
    async with ctx.db.unit_of_work() as uow:
        spec = await tiering.load_policy(uow.conn, policy_id)
        if spec is None:
            raise NotFound("no such tier policy", field="id")
        rules.validate_policy(spec)
        retired = await tiers_repo.activate(uow, policy_id, spec, expected_revision=expected_revision, actor=ctx.actor)
        customers = await tiers_repo.customer_count(uow)
        inline = customers <= INLINE_RETIER_MAX_CUSTOMERS
        result = await tiering.full_retier_inline(uow.conn, actor=ctx.actor) if inline else None
        uow.commit()
    if result is not None:
        retier = TierRetierType(
            mode=RetierMode.INLINE,
            customers=customers,
            changes=result.changes,
            grace_started_or_ended=result.grace_rows,
            job_id=None,
            message=f"{customers} customers re-tiered under policy v{spec.version}",
        )
    else:
        retier = await _defer_full_retier(ctx, customers, spec.version)
    ctx.extra.pop("tier_policy", None)
    return ActivateTierPolicyPayload(
        policy=await _read_back_policy(info, policy_id), retired_version=retired, retier=retier
    )


async def _defer_full_retier(ctx: Context, customers: int, version: int) -> TierRetierType:
    """Defer the batched full re-tier once the activation committed (a job already waiting will do: it
    reads the active policy when it runs)."""
    try:
        job_id = await ctx.services.jobs.configure_task(
            "tierwise.retier_all", queue="tierwise", queueing_lock="retier_all"
        ).defer_async(timestamp=int(time.time()))
        message = f"full re-tier of {customers} customers under policy v{version} queued as job {job_id}"
        return TierRetierType(
            mode=RetierMode.DEFERRED,
            customers=customers,
            changes=None,
            grace_started_or_ended=None,
            job_id=strawberry.ID(str(job_id)),
            message=message,
        )
    except procrastinate.exceptions.AlreadyEnqueued:
        message = f"a full re-tier is queued already; it runs under policy v{version}"
    except Exception:
        log.exception("could not queue the full re-tier after activating policy v%d", version)
        message = "the full re-tier could not be queued: it runs with the nightly job, or run `tierwise retier`"
    return TierRetierType(
        mode=RetierMode.DEFERRED,
        customers=customers,
        changes=None,
        grace_started_or_ended=None,
        job_id=None,
        message=message,
    )
