"""Use-cases of tiers: policy drafts (create, update, discard), activation, simulation, a customer's tier
override, the list of full re-tier runs, and the reads: the policies, the active policy, the inputs of a
tier explanation, the tier distribution and the migration matrix (within the caller's scope).

Each is ``(database, caller, command) -> result`` (the caller: api/usecases/caller.py): the resolvers of
api/graphql/tiers/ call them, and so may the CLI, jobs and tests. They take plain values (global ids decoded
already), return rows and dataclasses, and raise domain errors (domain/errors.py); nothing here knows GraphQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

import procrastinate.exceptions

from api.usecases import benefits as benefit_usecases
from api.usecases.caller import Caller
from domain import tiers as rules
from domain.errors import Invalid, NotFound, ValidationFailed
from infra import tiering
from infra.db import RequestDb
from infra.repos import benefits as benefits_repo
from infra.repos import tiers as tiers_repo
from infra.repos.base import Executor

log = logging.getLogger("tierwise.tiers")

# Up to this many customers an activation re-tiers them in its own transaction (about a second);
# above, the batched full re-tier runs as a job.
INLINE_RETIER_MAX_CUSTOMERS = 20_000

MAX_OVERRIDE_DAYS = 3 * 366
MAX_RUNS = 100


# ---------------------------------------------------------------- commands and results


@dataclass(frozen=True)
class TierDraft:
    """One tier of a draft policy, as given (trimmed and checked by the use-case)."""

    code: str
    name: str
    rank: int
    entry_rule: Any
    retain_rule: Any
    benefits: list[str] | None = None


@dataclass(frozen=True)
class CreateDraft:
    name: str
    description: str | None = None
    grace_days: int = 30
    min_stay_days: int = 30
    spend_window_days: int = 365
    tiers: list[TierDraft] | None = None  # required unless copy_from is given
    copy_from: UUID | None = None  # start from this policy's tiers and benefits


@dataclass(frozen=True)
class UpdateDraft:
    """A change of a draft: ``None`` keeps a value; ``tiers`` replaces every tier when given."""

    policy_id: UUID
    expected_revision: int
    name: str | None = None
    description: str | None = None
    grace_days: int | None = None
    min_stay_days: int | None = None
    spend_window_days: int | None = None
    tiers: list[TierDraft] | None = None


@dataclass(frozen=True)
class OverrideTier:
    customer_id: UUID
    tier: str
    reason: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ClearOverride:
    customer_id: UUID
    reason: str


class RetierMode(StrEnum):
    INLINE = "inline"
    DEFERRED = "deferred"


@dataclass(frozen=True)
class Retier:
    """The full re-tier an activation started: done in its transaction, or deferred as a job."""

    mode: RetierMode
    customers: int
    changes: int | None
    grace_started_or_ended: int | None
    job_id: str | None
    message: str


@dataclass(frozen=True)
class Activation:
    policy: dict[str, Any] | None  # the policy row, read back after the commit
    retired_version: int | None
    retier: Retier


@dataclass(frozen=True)
class PolicySimulation:
    policy: dict[str, Any]  # the simulated policy's row
    spec: rules.PolicySpec
    simulation: tiering.Simulation
    benefit_cost: benefit_usecases.BenefitCostProjection | None = None  # projected cost of the moves (issue 15)


# ---------------------------------------------------------------- drafts


def _tier_specs(items: list[TierDraft]) -> tuple[list[rules.TierSpec], dict[str, list[str]]]:
    specs, benefits = [], {}
    errors = []
    for i, t in enumerate(items):
        specs.append(rules.TierSpec(t.code.strip(), t.name.strip(), t.rank, t.entry_rule, t.retain_rule))
        given = [b.strip() for b in (t.benefits or []) if b.strip()]
        if len(given) > 20 or any(len(b) > 200 for b in given):
            errors.append(ValidationFailed("at most 20 benefits of up to 200 characters", field=f"tiers[{i}].benefits"))
        benefits[t.code.strip()] = given
    if errors:
        raise Invalid(errors)
    return specs, benefits


def _check_description(description: str | None) -> None:
    if description is not None and len(description) > 2000:
        raise ValidationFailed("a description has at most 2000 characters", field="description")


async def create_draft(db: RequestDb, caller: Caller, cmd: CreateDraft) -> dict[str, Any] | None:
    """A new draft policy, validated as a whole (nothing is saved when it is not valid); its row."""
    _check_description(cmd.description)
    async with db.unit_of_work() as uow:
        if cmd.tiers is not None:
            specs, benefits = _tier_specs(cmd.tiers)
        elif cmd.copy_from is not None:
            source = await tiering.load_policy(uow.conn, cmd.copy_from)
            if source is None:
                raise NotFound("no such tier policy", field="copyFrom")
            specs, benefits = list(source.tiers), {k: list(v) for k, v in source.benefits.items()}
        else:
            raise ValidationFailed("give the tiers, or copyFrom", field="tiers")
        spec = rules.PolicySpec(
            name=cmd.name.strip(),
            tiers=specs,
            grace_days=cmd.grace_days,
            min_stay_days=cmd.min_stay_days,
            spend_window_days=cmd.spend_window_days,
            benefits=benefits,
        )
        rules.validate_policy(spec)
        policy_id = await tiers_repo.create_draft(uow, spec, description=cmd.description, actor=caller.actor)
        if cmd.tiers is None and cmd.copy_from is not None:  # the copy starts with the source's benefit catalogue
            await benefits_repo.copy(uow, cmd.copy_from, policy_id)
        uow.commit()
    return await tiers_repo.policy(db, policy_id)


async def update_draft(db: RequestDb, caller: Caller, cmd: UpdateDraft) -> dict[str, Any] | None:
    """Change a draft (a stale ``expected_revision`` is a Conflict), validated again; its row."""
    _check_description(cmd.description)
    async with db.unit_of_work() as uow:
        current = await tiering.load_policy(uow.conn, cmd.policy_id)
        row = await tiers_repo.policy(uow, cmd.policy_id)
        if current is None or row is None:
            raise NotFound("no such tier policy", field="id")
        specs, benefits = (
            _tier_specs(cmd.tiers)
            if cmd.tiers is not None
            else (list(current.tiers), {k: list(v) for k, v in current.benefits.items()})
        )
        spec = rules.PolicySpec(
            name=(cmd.name if cmd.name is not None else current.name).strip(),
            tiers=specs,
            grace_days=cmd.grace_days if cmd.grace_days is not None else current.grace_days,
            min_stay_days=cmd.min_stay_days if cmd.min_stay_days is not None else current.min_stay_days,
            spend_window_days=(
                cmd.spend_window_days if cmd.spend_window_days is not None else current.spend_window_days
            ),
            benefits=benefits,
        )
        rules.validate_policy(spec)
        await tiers_repo.update_draft(
            uow,
            cmd.policy_id,
            spec,
            expected_revision=cmd.expected_revision,
            description=cmd.description if cmd.description is not None else row["description"],
            replace_tiers=cmd.tiers is not None,
            actor=caller.actor,
            before=current,
        )
        uow.commit()
    return await tiers_repo.policy(db, cmd.policy_id)


async def discard_draft(db: RequestDb, caller: Caller, policy_id: UUID, expected_revision: int | None) -> None:
    """Delete a draft that will not be used."""
    async with db.unit_of_work() as uow:
        await tiers_repo.discard_draft(uow, policy_id, expected_revision=expected_revision, actor=caller.actor)
        uow.commit()


# ---------------------------------------------------------------- activation


async def activate_policy(
    db: RequestDb, caller: Caller, policy_id: UUID, expected_revision: int | None, *, jobs: Any
) -> Activation:
    """Activate a validated draft and re-tier every customer under it: in this transaction for a small
    customer base (``INLINE_RETIER_MAX_CUSTOMERS``), otherwise as the deferred full re-tier job, queued on
    ``jobs`` (the procrastinate App) once the activation committed."""
    actor = caller.actor
    async with db.unit_of_work() as uow:
        spec = await tiering.load_policy(uow.conn, policy_id)
        if spec is None:
            raise NotFound("no such tier policy", field="id")
        rules.validate_policy(spec)
        retired = await tiers_repo.activate(uow, policy_id, spec, expected_revision=expected_revision, actor=actor)
        customers = await tiers_repo.customer_count(uow)
        inline = customers <= INLINE_RETIER_MAX_CUSTOMERS
        result = await tiering.full_retier_inline(uow.conn, actor=actor) if inline else None
        uow.commit()
    if result is not None:
        retier = Retier(
            mode=RetierMode.INLINE,
            customers=customers,
            changes=result.changes,
            grace_started_or_ended=result.grace_rows,
            job_id=None,
            message=f"{customers} customers re-tiered under policy v{spec.version}",
        )
    else:
        retier = await _defer_full_retier(jobs, customers, spec.version)
    return Activation(policy=await tiers_repo.policy(db, policy_id), retired_version=retired, retier=retier)


async def _defer_full_retier(jobs: Any, customers: int, version: int) -> Retier:
    """Defer the batched full re-tier once the activation committed (a job already waiting will do: it
    reads the active policy when it runs)."""
    try:
        job_id = await jobs.configure_task(
            "tierwise.retier_all", queue="tierwise", queueing_lock="retier_all"
        ).defer_async(timestamp=int(time.time()))
        message = f"full re-tier of {customers} customers under policy v{version} queued as job {job_id}"
        return Retier(
            mode=RetierMode.DEFERRED,
            customers=customers,
            changes=None,
            grace_started_or_ended=None,
            job_id=str(job_id),
            message=message,
        )
    except procrastinate.exceptions.AlreadyEnqueued:
        message = f"a full re-tier is queued already; it runs under policy v{version}"
    except Exception:
        log.exception("could not queue the full re-tier after activating policy v%d", version)
        message = "the full re-tier could not be queued: it runs with the nightly job, or run `tierwise retier`"
    return Retier(
        mode=RetierMode.DEFERRED,
        customers=customers,
        changes=None,
        grace_started_or_ended=None,
        job_id=None,
        message=message,
    )


# ---------------------------------------------------------------- simulation and runs


async def simulate_policy(db: RequestDb, caller: Caller, policy_id: UUID) -> PolicySimulation:
    """What activating this policy (normally a draft) would do now; nothing is written."""
    row = await tiers_repo.policy(db, policy_id)
    draft = await tiering.load_policy(db, policy_id)
    if row is None or draft is None or not draft.tiers:
        raise NotFound("no such tier policy", field="draftId")
    simulation = await tiering.simulate(db, draft)
    cells = [(c.from_tier, c.to_tier, c.customers) for c in simulation.now]
    eventual = [(c.from_tier, c.to_tier, c.customers) for c in simulation.eventual]
    cost = await benefit_usecases.project_benefit_cost(db, policy_id, cells, eventual)
    return PolicySimulation(policy=row, spec=draft, simulation=simulation, benefit_cost=cost)


async def runs(db: RequestDb, caller: Caller, first: int) -> list[dict[str, Any]]:
    """The full re-tiers, newest first, with their progress."""
    if not 1 <= first <= MAX_RUNS:
        raise ValidationFailed(f"first must be between 1 and {MAX_RUNS}", field="first")
    return await tiers_repo.runs(db, first=first)


# ---------------------------------------------------------------- reads


async def policies(db: Executor, caller: Caller, statuses: list[str] | None = None) -> list[dict[str, Any]]:
    """The tier policies (of these statuses, or all), newest version first. Shared by every partner."""
    return await tiers_repo.policies(db, statuses)


async def policy(db: Executor, caller: Caller, policy_id: UUID) -> dict[str, Any]:
    """One tier policy, any status."""
    row = await tiers_repo.policy(db, policy_id)
    if row is None:
        raise NotFound("no such tier policy", field="id")
    return row


async def active_policy(db: Executor, caller: Caller) -> rules.PolicySpec | None:
    """The active policy with its tiers (None before the first activation)."""
    return await tiering.load_policy(db)


async def explanation_inputs(db: Executor, caller: Caller, customer_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    """Per customer: its tier state and metrics as the engine computes them, for ``rules.explain``. The ids
    come from customers the caller read already (the resolvers' loaders): nothing is scoped again here."""
    return await tiers_repo.explanation_inputs(db, customer_ids)


@dataclass(frozen=True)
class Distribution:
    """Live customers and their revenue per current tier (``tier_code`` None: not tiered), and the active
    policy they are counted under."""

    policy: rules.PolicySpec | None
    rows: list[dict[str, Any]]


async def distribution(db: Executor, caller: Caller) -> Distribution:
    """The tier distribution of the customers the caller's scope reaches."""
    return Distribution(await active_policy(db, caller), await tiers_repo.distribution(db, caller.scope))


async def migrations(
    db: Executor, caller: Caller, since: dt.datetime, until: dt.datetime
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The migration matrix of the caller's customers between ``since`` and ``until`` (checked by the
    caller: both with a time zone, ``until`` after ``since``), and the history rows of the period per kind."""
    return await tiers_repo.migrations(db, since, until, caller.scope)


# ---------------------------------------------------------------- overrides


def _reason(reason: str) -> str:
    return " ".join(reason.split())


def _reason_error(reason: str) -> ValidationFailed | None:
    if not 0 < len(reason) <= 500:
        return ValidationFailed("a reason has 1 to 500 characters", field="reason")
    return None


async def override_tier(db: RequestDb, caller: Caller, cmd: OverrideTier) -> None:
    """Put a customer in a tier until an expiry, whatever the rules say; audited. A customer outside the
    caller's scope is NotFound."""
    reason = _reason(cmd.reason)
    errors = [e for e in (_reason_error(reason),) if e is not None]
    now = dt.datetime.now(dt.UTC)
    if cmd.expires_at.tzinfo is None:
        errors.append(ValidationFailed("expiresAt needs a time zone", field="expiresAt"))
    elif not now < cmd.expires_at <= now + dt.timedelta(days=MAX_OVERRIDE_DAYS):
        errors.append(
            ValidationFailed(f"expiresAt is in the future, at most {MAX_OVERRIDE_DAYS} days", field="expiresAt")
        )
    if errors:
        raise Invalid(errors)
    async with db.unit_of_work() as uow:
        await tiering.set_override(
            uow.conn,
            cmd.customer_id,
            tier=cmd.tier,
            reason=reason,
            expires_at=cmd.expires_at,
            actor=caller.actor,
            scope=caller.scope,
        )
        uow.commit()


async def clear_override(db: RequestDb, caller: Caller, cmd: ClearOverride) -> None:
    """End a manual override now: the entry rules place the customer again; audited."""
    reason = _reason(cmd.reason)
    error = _reason_error(reason)
    if error is not None:
        raise error
    async with db.unit_of_work() as uow:
        await tiering.clear_override(uow.conn, cmd.customer_id, reason=reason, actor=caller.actor, scope=caller.scope)
        uow.commit()
