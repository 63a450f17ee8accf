"""Thin resolvers of refunds, benefits, their uses and the economics of tiers: decode the input into a
use-case command (api/usecases/refunds.py, benefits.py, economics.py), call it, map the result."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.benefits.inputs import (
    BenefitInput,
    RecordBenefitRedemptionsInput,
    RecordRefundsInput,
    SetTierPolicyBenefitsInput,
    SetTierPolicyHoldoutInput,
)
from api.graphql.benefits.types import (
    BenefitCatalogueType,
    BenefitHoldoutReportType,
    BenefitRedemptionType,
    BudgetWarningType,
    RecordBenefitRedemptionsPayload,
    RecordRefundsPayload,
    RefundType,
    SetTierPolicyBenefitsPayload,
    SetTierPolicyHoldoutPayload,
    TierEconomicsType,
    TierEffectType,
)
from api.graphql.core.context import Context, context_of
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import mutate, query
from api.usecases import benefits as benefit_usecases
from api.usecases import economics as economics_usecases
from api.usecases import refunds as refund_usecases
from domain.benefits import BenefitSpec
from domain.errors import Invalid, NotFound, ValidationFailed


@strawberry.type
class BenefitMutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Refunds or returns of purchases, all or nothing: each at most what is left of its purchase; "
        "idempotent on (writer, externalId) like purchases; metrics, tier and churn follow at once"
    )
    async def record_refunds(self, info: Info[Context, None], input: RecordRefundsInput) -> RecordRefundsPayload | None:
        ctx = context_of(info)

        async def run() -> RecordRefundsPayload:
            items, errors = [], []
            for n, r in enumerate(input.refunds):
                purchase_id = None
                if r.purchase_id is not None:
                    try:
                        purchase_id = from_global_id(r.purchase_id, "Purchase", field=f"refunds[{n}].purchaseId")[1]
                    except NotFound as exc:
                        errors.append(ValidationFailed("no such purchase", field=exc.field))
                        continue
                items.append(
                    refund_usecases.RefundItem(
                        purchase_id=purchase_id,
                        purchase_external_id=r.purchase_external_id,
                        external_id=r.external_id,
                        amount=r.amount,
                        reason=r.reason,
                        refunded_at=r.refunded_at,
                    )
                )
            if errors:
                for e in errors:
                    e.code = NotFound.code
                raise Invalid(errors)
            done = await refund_usecases.record_refunds(
                ctx.db, ctx.caller, refund_usecases.RecordRefunds(items), max_batch=ctx.settings.max_batch_size
            )
            return RecordRefundsPayload(
                refunds=[RefundType.from_row(r) for r in done.refunds], inserted_count=done.inserted
            )

        return await mutate(RecordRefundsPayload, run)


def _redemption_items(input: RecordBenefitRedemptionsInput) -> list[benefit_usecases.RedemptionItem]:
    items, errors = [], []
    for n, x in enumerate(input.redemptions):
        customer_id = None
        if x.customer_id is not None:
            try:
                customer_id = from_global_id(x.customer_id, "Customer", field=f"redemptions[{n}].customerId")[1]
            except NotFound as exc:
                error = ValidationFailed("no such customer", field=exc.field)
                error.code = NotFound.code
                errors.append(error)
                continue
        items.append(
            benefit_usecases.RedemptionItem(
                benefit_code=x.benefit_code,
                customer_id=customer_id,
                customer_external_ref=x.customer_external_ref,
                external_id=x.external_id,
                order_amount=x.order_amount,
                redeemed_at=x.redeemed_at,
            )
        )
    if errors:
        raise Invalid(errors)
    return items


def _benefit_specs(items: list[BenefitInput]) -> list[BenefitSpec]:
    return [
        BenefitSpec(
            code=b.code,
            name=b.name,
            kind=b.kind.value,
            cost_model=b.cost_model.value,
            cost_value=b.cost_value,
            tiers=list(b.tiers),
            budget=b.budget,
            budget_period=b.budget_period.value if b.budget_period else None,
            description=b.description,
        )
        for b in items
    ]


@strawberry.type
class BenefitQuery:
    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="The benefits of a tier policy (default: the active one) with their cost models, and what they "
        "change against the policy it replaces or would replace"
    )
    async def benefit_catalogue(
        self, info: Info[Context, None], policy_id: strawberry.ID | None = None
    ) -> BenefitCatalogueType | None:
        async def run() -> BenefitCatalogueType:
            raw = from_global_id(policy_id, "TierPolicy", field="policyId")[1] if policy_id is not None else None
            return BenefitCatalogueType.build(await benefit_usecases.catalogue(context_of(info).db, raw))

        return await query(run)

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Per tier over a period: customers, revenue, refunds, cost of benefits used, cost of service, "
        "contribution per customer and its change against the tier below; also as CSV"
    )
    async def tier_economics(
        self,
        info: Info[Context, None],
        since: Annotated[dt.datetime, strawberry.argument(name="from", description="inclusive")],
        until: Annotated[dt.datetime, strawberry.argument(name="to", description="exclusive")],
        hourly_service_cost: Annotated[
            Decimal | None, strawberry.argument(description="default: TIERWISE_SERVICE_HOURLY_COST")
        ] = None,
        survey_cost: Annotated[Decimal | None, strawberry.argument(description="default: TIERWISE_SURVEY_COST")] = None,
    ) -> TierEconomicsType | None:
        ctx = context_of(info)

        async def run() -> TierEconomicsType:
            q = economics_usecases.TierEconomicsQuery(
                since=since,
                until=until,
                hourly_service_cost=(
                    hourly_service_cost if hourly_service_cost is not None else ctx.settings.service_hourly_cost
                ),
                survey_cost=survey_cost if survey_cost is not None else ctx.settings.survey_cost,
            )
            return TierEconomicsType.build(await economics_usecases.tier_economics(ctx.db, ctx.caller, q))

        return await query(run)

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="The measured effect of a tier: customers just above against just below its spend threshold "
        "(a regression-discontinuity estimate) on their spend, churn and NPS in the window that follows, with a "
        "95 % interval and the sample size; says so when the sample is too small to tell"
    )
    async def tier_effect(
        self,
        info: Info[Context, None],
        tier: str,
        window_days: int = 90,
        bandwidth: Annotated[
            Decimal | None, strawberry.argument(description="default: a quarter of the threshold")
        ] = None,
        start: Annotated[
            dt.datetime | None, strawberry.argument(description="default: windowDays ago (the window is over)")
        ] = None,
    ) -> TierEffectType | None:
        ctx = context_of(info)

        async def run() -> TierEffectType:
            q = economics_usecases.TierEffectQuery(tier=tier, window_days=window_days, bandwidth=bandwidth, start=start)
            return TierEffectType.build(await economics_usecases.tier_effect(ctx.db, ctx.caller, q))

        return await query(run)

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="The benefit holdout of a tier: customers upgraded to it while some were held out of its "
        "benefits, the held-out group against the treated one on their spend, churn and NPS after the upgrade, "
        "with a 95 % interval and the sample sizes; says so when the sample is too small to tell"
    )
    async def benefit_holdout(
        self,
        info: Info[Context, None],
        tier: str,
        since: Annotated[
            dt.datetime | None, strawberry.argument(name="from", description="upgrades from (default: all)")
        ] = None,
        until: Annotated[
            dt.datetime | None, strawberry.argument(name="to", description="exclusive (default: now)")
        ] = None,
    ) -> BenefitHoldoutReportType | None:
        ctx = context_of(info)

        async def run() -> BenefitHoldoutReportType:
            q = economics_usecases.BenefitHoldoutQuery(tier=tier, since=since, until=until)
            return BenefitHoldoutReportType.build(await economics_usecases.benefit_holdout(ctx.db, ctx.caller, q))

        return await query(run)


@strawberry.type
class BenefitCatalogueMutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Set every benefit of a draft tier policy (validated against its tiers; the draft's revision goes "
        "up); they come into force when the policy is activated"
    )
    async def set_tier_policy_benefits(
        self, info: Info[Context, None], input: SetTierPolicyBenefitsInput
    ) -> SetTierPolicyBenefitsPayload | None:
        ctx = context_of(info)

        async def run() -> SetTierPolicyBenefitsPayload:
            cmd = benefit_usecases.SetPolicyBenefits(
                policy_id=from_global_id(input.policy_id, "TierPolicy", field="policyId")[1],
                expected_revision=input.expected_revision,
                benefits=_benefit_specs(input.benefits),
            )
            done = await benefit_usecases.set_policy_benefits(ctx.db, ctx.caller, cmd)
            return SetTierPolicyBenefitsPayload(catalogue=BenefitCatalogueType.build(done))

        return await mutate(SetTierPolicyBenefitsPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Set the benefit holdout of a draft tier policy: the share of the customers it upgrades whose new "
        "tier's benefits are withheld, and for how many days (audited; the draft's revision goes up); in force when "
        "the policy is activated; share 0 and days 0: off"
    )
    async def set_tier_policy_holdout(
        self, info: Info[Context, None], input: SetTierPolicyHoldoutInput
    ) -> SetTierPolicyHoldoutPayload | None:
        ctx = context_of(info)

        async def run() -> SetTierPolicyHoldoutPayload:
            cmd = benefit_usecases.SetPolicyHoldout(
                policy_id=from_global_id(input.policy_id, "TierPolicy", field="policyId")[1],
                expected_revision=input.expected_revision,
                share=input.share,
                days=input.days,
            )
            done = await benefit_usecases.set_policy_holdout(ctx.db, ctx.caller, cmd)
            return SetTierPolicyHoldoutPayload(catalogue=BenefitCatalogueType.build(done))

        return await mutate(SetTierPolicyHoldoutPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Uses of benefits of the active policy, all or nothing: only by eligible customers (NOT_ELIGIBLE "
        "otherwise; WITHHELD while a customer is held out of its new tier's benefits), cost from the benefit's model "
        "at the time of use, idempotent on (writer, externalId); "
        "budgets warn at 80 % and when passed"
    )
    async def record_benefit_redemptions(
        self, info: Info[Context, None], input: RecordBenefitRedemptionsInput
    ) -> RecordBenefitRedemptionsPayload | None:
        ctx = context_of(info)

        async def run() -> RecordBenefitRedemptionsPayload:
            done = await benefit_usecases.record_redemptions(
                ctx.db,
                ctx.caller,
                benefit_usecases.RecordRedemptions(_redemption_items(input)),
                max_batch=ctx.settings.max_batch_size,
            )
            return RecordBenefitRedemptionsPayload(
                redemptions=[BenefitRedemptionType.from_row(r) for r in done.redemptions],
                inserted_count=done.inserted,
                warnings=[BudgetWarningType.build(w) for w in done.warnings],
            )

        return await mutate(RecordBenefitRedemptionsPayload, run)
