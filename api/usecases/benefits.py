"""Use-cases of benefits (issue 15): the benefit catalogue of a tier policy and the uses of benefits.

Free of GraphQL: ``(db, caller, command) -> result``, called by api/graphql/benefits/, the CLI and tests.

- **Catalogue**: benefits belong to a tier policy version (domain/benefits.py). A draft's benefits are set
  as a whole (``set_policy_benefits``: validated against the draft's tiers, the draft's revision goes up,
  audited); a new draft copied from a policy starts with its benefits; activation makes them the ones in
  force. ``catalogue`` reads a policy's benefits and what differs from the policy it would replace (the
  active one, for a draft; the one active before it, for an active or retired policy).
- **Uses**: ``record_redemptions`` records uses of the active policy's benefits by customers the caller's
  scope reaches, idempotent on the writer's external id like purchases; a customer whose tier is not
  eligible is refused with ``NOT_ELIGIBLE``; the cost comes from the benefit's cost model at the time of
  use; budgets warn when a batch brings a tier's spending in the period to 80 % of its budget or past it.
  A customer held out of its new tier's benefits (domain/holdout.py) is refused them with ``WITHHELD`` while
  its holdout runs (the benefits of the tier it came from still apply).
- **Holdout**: ``set_policy_holdout`` sets the share of upgraded customers whose new benefits a draft policy
  withholds, and for how many days (audited with the draft; 0 and 0: off); the tier engine draws the upgraded
  customers into it once the policy is active (infra/tiering.py).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from domain import benefits as rules
from domain import holdout as holdout_rules
from domain.batches import checked_batch
from domain.errors import Invalid, NotFound, ValidationFailed
from domain.idempotency import BatchKeys, key_reused
from infra import tiering
from infra.db import RequestDb, retrying
from infra.repos import benefits as benefits_repo
from infra.repos import purchases as purchases_repo
from infra.repos import tiers as tiers_repo
from infra.repos.base import Executor

MAX_ORDER = Decimal("1000000000")
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NOT_ELIGIBLE = "NOT_ELIGIBLE"


def _coded(message: str, field: str, code: str) -> ValidationFailed:
    error = ValidationFailed(message, field=field)
    error.code = code
    return error


# ---------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class SetPolicyBenefits:
    policy_id: UUID
    expected_revision: int
    benefits: list[rules.BenefitSpec]


@dataclass(frozen=True)
class SetPolicyHoldout:
    policy_id: UUID
    expected_revision: int
    share: Decimal
    days: int


@dataclass(frozen=True)
class Catalogue:
    policy_id: UUID
    policy_version: int
    status: str
    benefits: list[rules.BenefitSpec]
    compared_with_version: int | None
    changes: list[rules.BenefitChange]
    holdout_share: Decimal = Decimal(0)
    holdout_days: int = 0


def _cleaned(b: rules.BenefitSpec) -> rules.BenefitSpec:
    return rules.BenefitSpec(
        code=b.code.strip(),
        name=" ".join(b.name.split()),
        kind=b.kind,
        cost_model=b.cost_model,
        cost_value=b.cost_value,
        tiers=list(dict.fromkeys(t.strip() for t in b.tiers)),
        budget=b.budget,
        budget_period=b.budget_period,
        description=b.description.strip() if b.description else None,
    )


async def set_policy_benefits(db: RequestDb, caller: Caller, cmd: SetPolicyBenefits) -> Catalogue:
    """Replace every benefit of a draft policy (a stale revision is a CONFLICT; only a draft changes)."""
    specs = [_cleaned(b) for b in cmd.benefits]
    async with db.unit_of_work() as uow:
        await tiers_repo.lock_draft(uow, cmd.policy_id, cmd.expected_revision)
        policy = await tiering.load_policy(uow.conn, cmd.policy_id)
        assert policy is not None  # locked just now
        rules.validate_benefits(specs, {t.code for t in policy.tiers})
        before = [benefits_repo.spec_of(r) for r in await benefits_repo.of_policy(uow, cmd.policy_id)]
        await benefits_repo.replace(uow, cmd.policy_id, specs)
        await tiers_repo.touch_draft(
            uow,
            cmd.policy_id,
            actor=caller.actor,
            action="tier_policy_benefits_set",
            before={"benefits": [b.code for b in before]},
            after={"changes": [c.__dict__ for c in rules.benefit_changes(before, specs)]},
        )
        uow.commit()
    return await catalogue(db, cmd.policy_id)


async def set_policy_holdout(db: RequestDb, caller: Caller, cmd: SetPolicyHoldout) -> Catalogue:
    """Set the benefit holdout of a draft policy (a stale revision is a CONFLICT; only a draft changes)."""
    holdout_rules.validate(cmd.share, cmd.days)
    async with db.unit_of_work() as uow:
        row = await tiers_repo.lock_draft(uow, cmd.policy_id, cmd.expected_revision)
        await benefits_repo.set_holdout(uow, cmd.policy_id, cmd.share, cmd.days)
        await tiers_repo.touch_draft(
            uow,
            cmd.policy_id,
            actor=caller.actor,
            action="tier_policy_holdout_set",
            before={"share": str(row["holdout_share"].normalize()), "days": row["holdout_days"]},
            after={"share": str(cmd.share.normalize()), "days": cmd.days},
        )
        uow.commit()
    return await catalogue(db, cmd.policy_id)


async def catalogue(db: Executor, policy_id: UUID | None) -> Catalogue:
    """A policy's benefits (the active policy's when ``policy_id`` is None) and their change against the policy
    it replaces or would replace."""
    policy = await benefits_repo.policy_row(db, policy_id)
    if policy is None:
        raise NotFound("no such tier policy", field="policyId")
    if policy["status"] == "draft":
        other = await benefits_repo.policy_row(db, None)
    else:
        other = await benefits_repo.previous_active(db, policy["activated_at"]) if policy["activated_at"] else None
    mine = [benefits_repo.spec_of(r) for r in await benefits_repo.of_policy(db, policy["id"])]
    theirs = [benefits_repo.spec_of(r) for r in await benefits_repo.of_policy(db, other["id"])] if other else []
    return Catalogue(
        policy_id=policy["id"],
        policy_version=policy["version"],
        status=policy["status"],
        benefits=mine,
        compared_with_version=other["version"] if other else None,
        changes=rules.benefit_changes(theirs, mine) if other else [],
        holdout_share=Decimal(policy["holdout_share"]).normalize(),
        holdout_days=policy["holdout_days"],
    )


# ---------------------------------------------------------------- uses


@dataclass(frozen=True)
class RedemptionItem:
    benefit_code: str
    customer_id: UUID | None = None
    customer_external_ref: str | None = None
    external_id: str | None = None
    order_amount: Decimal | str | None = None
    redeemed_at: dt.datetime | None = None  # default: now


@dataclass(frozen=True)
class RecordRedemptions:
    redemptions: list[RedemptionItem]


@dataclass(frozen=True)
class RecordedRedemptions:
    redemptions: list[dict[str, Any]]
    inserted: int
    warnings: list[rules.BudgetWarning]


def _checked(n: int, item: RedemptionItem, now: dt.datetime) -> tuple[dict[str, Any], list[ValidationFailed]]:
    where = f"redemptions[{n}]"
    errors: list[ValidationFailed] = []
    order: Decimal | None = None
    if item.order_amount is not None:
        try:
            order = rules.parse_decimal(item.order_amount, field=f"{where}.orderAmount")
            if order <= 0 or order > MAX_ORDER or order != order.quantize(rules.CENT):
                raise ValidationFailed("orderAmount is positive, with 2 decimals", field=f"{where}.orderAmount")
        except ValidationFailed as exc:
            exc.field = f"{where}.orderAmount"
            errors.append(exc)
    at = item.redeemed_at or now
    if at.tzinfo is None:
        errors.append(ValidationFailed("redeemedAt needs a time zone", field=f"{where}.redeemedAt"))
    elif at > now + dt.timedelta(minutes=5):
        errors.append(ValidationFailed("redeemedAt is in the future", field=f"{where}.redeemedAt"))
    elif at < EARLIEST:
        errors.append(ValidationFailed("redeemedAt is before 1970", field=f"{where}.redeemedAt"))
    if (item.customer_id is None) == (item.customer_external_ref is None):
        errors.append(ValidationFailed("give customerId or customerExternalRef", field=f"{where}.customerId"))
    if item.external_id is not None and not 0 < len(item.external_id) <= 100:
        errors.append(ValidationFailed("externalId has 1 to 100 characters", field=f"{where}.externalId"))
    code = item.benefit_code.strip()
    return {"benefit_code": code, "order_amount": order, "redeemed_at": at, "external_id": item.external_id}, errors


def _content(customer_id: UUID | None, values: dict[str, Any], given: RedemptionItem) -> dict[str, Any]:
    content: dict[str, Any] = {"customerId": customer_id, "benefitCode": values["benefit_code"]}
    if given.order_amount is not None:
        content["orderAmount"] = values["order_amount"]
    if given.redeemed_at is not None:
        content["redeemedAt"] = values["redeemed_at"]
    return content


def _stored_content(row: Mapping[str, Any], given: RedemptionItem) -> dict[str, Any]:
    """What a stored use was recorded with, as ``_content`` names it for ``given``'s fields."""
    return _content(row["customer_id"], dict(row), given)


async def record_redemptions(
    db: RequestDb, caller: Caller, cmd: RecordRedemptions, *, max_batch: int
) -> RecordedRedemptions:
    """Record uses of benefits, all or nothing (any error: nothing is written)."""
    scope = caller.scope
    now = dt.datetime.now(dt.UTC)
    values, errors = checked_batch(
        cmd.redemptions, lambda n, item: _checked(n, item, now), field="redemptions", max_batch=max_batch
    )
    if errors:
        raise Invalid(errors)

    async def attempt() -> RecordedRedemptions:  # run again if PostgreSQL cancels it (infra.db.retrying)
        async with db.unit_of_work() as uow:
            policy = await benefits_repo.policy_row(uow, None)
            offered = {
                b["code"]: b for b in (await benefits_repo.of_policy(uow, policy["id"]) if policy is not None else [])
            }
            refs = [
                i.customer_external_ref for i in cmd.redemptions if i.customer_id is None and i.customer_external_ref
            ]
            by_ref = await purchases_repo.resolve_external_refs(uow.conn, refs, scope)
            customer_ids: list[UUID | None] = [
                i.customer_id if i.customer_id is not None else by_ref.get(i.customer_external_ref or "")
                for i in cmd.redemptions
            ]
            tiers = await benefits_repo.customers_with_tier(
                uow.conn, [c for c in customer_ids if c is not None], caller.scope
            )
            held = await benefits_repo.held_out(uow, list(tiers))
            stored = await benefits_repo.by_external_id(
                uow, [v["external_id"] for v in values if v["external_id"]], scope
            )
            pending: list[tuple[int, dict[str, Any], rules.BenefitSpec, UUID]] = []
            answers: list[Any] = []
            keys = BatchKeys(stored)
            for n, (item, v, cid) in enumerate(zip(cmd.redemptions, values, customer_ids, strict=True)):
                where = f"redemptions[{n}]"
                content = _content(cid, v, item)
                ext = v["external_id"]
                stored_content = functools.partial(_stored_content, given=item)
                if keys.answered(
                    ext, content, stored_content, where=f"{where}.externalId", answers=answers, errors=errors
                ):
                    continue
                answers.append(None)
                if cid is None or cid not in tiers:
                    field = f"{where}.customerId" if item.customer_id is not None else f"{where}.customerExternalRef"
                    errors.append(_coded("no such customer", field, NotFound.code))
                    continue
                offer = offered.get(v["benefit_code"])
                if offer is None:
                    errors.append(
                        _coded(
                            f"the active policy offers no benefit '{v['benefit_code']}'",
                            f"{where}.benefitCode",
                            "NOT_FOUND",
                        )
                    )
                    continue
                spec = benefits_repo.spec_of(offer)
                tier = tiers[cid]
                if not spec.eligible(tier):
                    errors.append(
                        _coded(
                            f"{spec.name} is for tier {', '.join(spec.tiers)}: this customer is {tier or 'in no tier'}",
                            f"{where}.benefitCode",
                            NOT_ELIGIBLE,
                        )
                    )
                    continue
                withheld = next((a for a in held.get(cid, []) if a.withholds(spec.tiers, v["redeemed_at"])), None)
                if withheld is not None:
                    errors.append(_coded(withheld.message(spec.name), f"{where}.benefitCode", holdout_rules.WITHHELD))
                    continue
                if spec.cost_model == "percent_of_order" and v["order_amount"] is None:
                    errors.append(
                        ValidationFailed(
                            f"{spec.name} costs a share of the order: give orderAmount", field=f"{where}.orderAmount"
                        )
                    )
                    continue
                pending.append((n, v, spec, cid))
                keys.remember(ext, n, content)
            if errors:
                raise Invalid(errors)
            # per-customer-month benefits: charged on the first use in a month (earlier this month, or in this batch)
            monthly = [
                (cid, spec.code, rules.month_start(v["redeemed_at"]))
                for _, v, spec, cid in pending
                if spec.cost_model == "per_customer_month"
            ]
            charged = await benefits_repo.charged_this_month(
                uow, [(c, b) for c, b, _ in monthly], [m for _, _, m in monthly]
            )
            new_items: list[dict[str, Any]] = []
            spending: dict[tuple[str, str, dt.datetime], Decimal] = {}
            for n, v, spec, cid in pending:
                month = (cid, spec.code, rules.month_start(v["redeemed_at"]))
                cost = rules.cost_of_use(spec, v["order_amount"], charged_this_month=month in charged)
                if spec.cost_model == "per_customer_month":
                    charged.add(month)
                tier = tiers[cid] or ""
                if spec.budget_period is not None:
                    start, _ = rules.period_bounds(spec.budget_period, v["redeemed_at"])
                    key = (spec.code, tier, start)
                    spending[key] = spending.get(key, Decimal(0)) + cost
                new_items.append(
                    {
                        **v,
                        "benefit_id": offered[spec.code]["id"],
                        "policy_version": policy["version"] if policy else 0,
                        "customer_id": cid,
                        "tier_code": tier,
                        "cost": cost,
                    }
                )
                answers[n] = len(new_items) - 1
            # what each budget period touched had cost before this batch (one statement, before the insert)
            periods: dict[tuple[str, str, dt.datetime], tuple[str, str, dt.date, dt.date]] = {}
            for code, tier, start in spending:
                period = benefits_repo.spec_of(offered[code]).budget_period
                assert period is not None
                begin, end = rules.period_bounds(period, start)
                periods[(code, tier, start)] = (code, tier, begin.date(), end.date())
            spent_before = await benefits_repo.spent(uow, list(periods.values()))
            warnings = []
            for key, now_spent in sorted(spending.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
                code, tier, start = key
                warning = rules.budget_warning(
                    benefits_repo.spec_of(offered[code]), tier, start, spent_before[periods[key]], now_spent
                )
                if warning is not None:
                    warnings.append(warning)
            inserted = await benefits_repo.insert_redemptions(uow.conn, new_items, scope=scope, actor=caller.actor)
            if len(inserted) != len(new_items):
                taken = {i["external_id"] for i in new_items} - {x["external_id"] for x in inserted}
                raise Invalid(
                    [
                        key_reused("externalId", ["a concurrent request"], where=f"redemptions[{n}].externalId")
                        for n, v in enumerate(values)
                        if v["external_id"] in taken
                    ]
                )
            rows = [a if isinstance(a, dict) else inserted[a] for a in answers]
            uow.commit()
        return RecordedRedemptions(redemptions=rows, inserted=len(inserted), warnings=warnings)

    return await retrying(attempt)


# ---------------------------------------------------------------- projected cost of a simulated policy


LOOKBACK_DAYS = 90


@dataclass(frozen=True)
class BenefitCostProjection:
    """The monthly benefit cost of the customers now (under the active policy's benefits) and after the simulated
    moves (under the simulated policy's benefits), at the rates of use observed over ``lookback_days``."""

    lookback_days: int
    monthly_now: Decimal
    monthly_at_activation: Decimal
    monthly_eventual: Decimal
    rate_now: dict[str, Decimal]  # per tier: monthly cost of one customer under the active policy's benefits
    rate_simulated: dict[str, Decimal]
    unobserved: list[str]  # benefits of the simulated policy with no observed rate (new, or never eligible)


def _per_tier(cells: list[tuple[str | None, str, int]], side: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for cell in cells:
        tier = cell[side]
        if tier is not None:
            out[str(tier)] = out.get(str(tier), 0) + int(cell[2])
    return out


async def project_benefit_cost(
    db: Executor,
    policy_id: UUID,
    moves: list[tuple[str | None, str, int]],
    eventual: list[tuple[str | None, str, int]],
) -> BenefitCostProjection:
    """``moves``/``eventual``: the simulation's (from tier, to tier, customers) cells."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=LOOKBACK_DAYS)
    months = Decimal(LOOKBACK_DAYS) / Decimal(30)
    active = await benefits_repo.policy_row(db, None)
    current = [benefits_repo.spec_of(r) for r in await benefits_repo.of_policy(db, active["id"])] if active else []
    simulated = [benefits_repo.spec_of(r) for r in await benefits_repo.of_policy(db, policy_id)]
    counts = await benefits_repo.customers_per_tier(db)
    used = await benefits_repo.usage_since(db, since)
    usage = {
        b.code: rules.Usage(
            code=b.code,
            uses=int(used.get(b.code, {}).get("uses", 0)),
            customer_months=int(used.get(b.code, {}).get("customer_months", 0)),
            order_total=Decimal(used.get(b.code, {}).get("order_total", 0)),
            eligible=sum(counts.get(t, 0) for t in b.tiers),
        )
        for b in current
    }
    rate_now, _ = rules.tier_rates(current, usage, months)
    rate_simulated, unobserved = rules.tier_rates(simulated, usage, months)
    return BenefitCostProjection(
        lookback_days=LOOKBACK_DAYS,
        monthly_now=rules.projected_cost(_per_tier(moves, 0), rate_now),
        monthly_at_activation=rules.projected_cost(_per_tier(moves, 1), rate_simulated),
        monthly_eventual=rules.projected_cost(_per_tier(eventual, 1), rate_simulated),
        rate_now={t: r.quantize(rules.CENT) for t, r in sorted(rate_now.items())},
        rate_simulated={t: r.quantize(rules.CENT) for t, r in sorted(rate_simulated.items())},
        unobserved=unobserved,
    )
