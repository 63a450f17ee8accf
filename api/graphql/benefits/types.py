"""GraphQL types of refunds, benefits and their uses, and the economics of tiers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.benefits.inputs import BenefitCostModel, BenefitKind, BudgetPeriod
from api.graphql.core.context import Context
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import UserError
from api.graphql.customers.types import CustomerType, load_customer
from domain.benefits import BenefitSpec, BudgetWarning


@strawberry.type(name="Refund", description="A refund or return of (part of) a purchase")
class RefundType:
    id: strawberry.ID
    external_id: str | None
    purchase_id: strawberry.ID
    amount: Decimal | None
    reason: str | None
    refunded_at: dt.datetime | None
    created_at: dt.datetime
    customer_ref: strawberry.Private[UUID]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RefundType:
        return cls(
            id=strawberry.ID(to_global_id("Refund", row["id"])),
            external_id=row["external_id"],
            purchase_id=strawberry.ID(to_global_id("Purchase", row["purchase_id"])),
            amount=row["amount"],
            reason=row["reason"],
            refunded_at=row["refunded_at"],
            created_at=row["created_at"],
            customer_ref=row["customer_id"],
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)


@strawberry.type
class RecordRefundsPayload:
    refunds: list[RefundType] = strawberry.field(default_factory=list)
    inserted_count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(name="Benefit", description="A benefit of a tier policy version, with its cost model")
class BenefitType:
    code: str
    name: str
    kind: BenefitKind
    tiers: list[str]
    description: str | None
    cost_model: BenefitCostModel | None
    cost_value: Decimal | None
    budget: Decimal | None
    budget_period: BudgetPeriod | None

    @classmethod
    def from_spec(cls, b: BenefitSpec) -> BenefitType:
        return cls(
            code=b.code,
            name=b.name,
            kind=BenefitKind(b.kind),
            tiers=list(b.tiers),
            description=b.description,
            cost_model=BenefitCostModel(b.cost_model),
            cost_value=b.cost_value,
            budget=b.budget,
            budget_period=BudgetPeriod(b.budget_period) if b.budget_period else None,
        )


@strawberry.type(name="BenefitChange", description="A benefit added, removed or changed by a policy version")
class BenefitChangeType:
    code: str
    change: str
    fields: list[str]


@strawberry.type(
    name="BenefitHoldout",
    description="The share of the customers a policy upgrades whose new tier's benefits are withheld for a while, "
    "to measure their effect (benefitHoldout); share 0: off",
)
class BenefitHoldoutType:
    share: Decimal
    days: int
    enabled: bool


@strawberry.type(name="BenefitCatalogue")
class BenefitCatalogueType:
    policy_id: strawberry.ID
    policy_version: int
    status: str
    benefits: list[BenefitType]
    compared_with_version: int | None = strawberry.field(
        description="the policy the changes are against: the active one for a draft, the one before for others"
    )
    changes: list[BenefitChangeType]
    holdout: BenefitHoldoutType | None

    @classmethod
    def build(cls, c: Any) -> BenefitCatalogueType:
        return cls(
            policy_id=strawberry.ID(to_global_id("TierPolicy", c.policy_id)),
            policy_version=c.policy_version,
            status=c.status,
            benefits=[BenefitType.from_spec(b) for b in c.benefits],
            compared_with_version=c.compared_with_version,
            changes=[BenefitChangeType(code=x.code, change=x.change, fields=list(x.fields)) for x in c.changes],
            holdout=BenefitHoldoutType(share=c.holdout_share, days=c.holdout_days, enabled=c.holdout_share > 0),
        )


@strawberry.type
class SetTierPolicyBenefitsPayload:
    catalogue: BenefitCatalogueType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SetTierPolicyHoldoutPayload:
    catalogue: BenefitCatalogueType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(name="BenefitRedemption", description="One use of a benefit by a customer")
class BenefitRedemptionType:
    id: strawberry.ID
    external_id: str | None
    benefit_code: str
    policy_version: int
    tier: str
    order_amount: Decimal | None
    cost: Decimal | None
    redeemed_at: dt.datetime
    created_at: dt.datetime
    customer_ref: strawberry.Private[UUID]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BenefitRedemptionType:
        return cls(
            id=strawberry.ID(to_global_id("BenefitRedemption", row["id"])),
            external_id=row["external_id"],
            benefit_code=row["benefit_code"],
            policy_version=row["policy_version"],
            tier=row["tier_code"],
            order_amount=row["order_amount"],
            cost=row["cost"],
            redeemed_at=row["redeemed_at"],
            created_at=row["created_at"],
            customer_ref=row["customer_id"],
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)


@strawberry.type(name="BudgetWarning", description="A benefit's budget for a tier and period nearly spent, or passed")
class BudgetWarningType:
    benefit: str
    tier: str
    period_start: dt.datetime
    exceeded: bool
    budget: Decimal | None
    spent: Decimal | None
    share: Decimal | None
    message: str | None

    @classmethod
    def build(cls, w: BudgetWarning) -> BudgetWarningType:
        return cls(
            benefit=w.benefit,
            tier=w.tier,
            period_start=w.period_start,
            exceeded=w.exceeded,
            budget=w.budget,
            spent=w.spent,
            share=w.share,
            message=w.message,
        )


@strawberry.type
class RecordBenefitRedemptionsPayload:
    redemptions: list[BenefitRedemptionType] = strawberry.field(default_factory=list)
    inserted_count: int = 0
    warnings: list[BudgetWarningType] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(name="TierEconomicsRow", description="What one tier earned and cost in the period")
class TierEconomicsRowType:
    tier: str | None
    rank: int | None
    customers: int
    revenue: Decimal
    refunds: Decimal
    net_revenue: Decimal
    benefit_uses: int
    benefit_cost: Decimal
    complaints: int
    complaint_hours: Decimal
    survey_responses: int
    service_cost: Decimal
    contribution: Decimal
    contribution_per_customer: Decimal | None
    against_tier_below: Decimal | None = strawberry.field(
        description="contribution per customer minus that of the next tier down"
    )

    @classmethod
    def build(cls, r: Any) -> TierEconomicsRowType:
        return cls(**{name: getattr(r, name) for name in ECONOMICS_COLUMNS})


ECONOMICS_COLUMNS = (
    "tier",
    "rank",
    "customers",
    "revenue",
    "refunds",
    "net_revenue",
    "benefit_uses",
    "benefit_cost",
    "complaints",
    "complaint_hours",
    "survey_responses",
    "service_cost",
    "contribution",
    "contribution_per_customer",
    "against_tier_below",
)


@strawberry.type(name="TierEconomics", description="What each tier earned and cost over a period")
class TierEconomicsType:
    since: dt.datetime = strawberry.field(name="from")
    until: dt.datetime = strawberry.field(name="to")
    hourly_service_cost: Decimal
    survey_cost: Decimal
    tier_basis: str = strawberry.field(description="which tier a customer's figures count under")
    rows: list[TierEconomicsRowType]
    csv: str = strawberry.field(description="the rows as CSV, with a header line")

    @classmethod
    def build(cls, report: Any) -> TierEconomicsType:
        return cls(
            since=report.since,
            until=report.until,
            hourly_service_cost=report.hourly_service_cost,
            survey_cost=report.survey_cost,
            tier_basis="the customer's tier now (under the active policy)",
            rows=[TierEconomicsRowType.build(r) for r in report.rows],
            csv=report.csv,
        )


def _dec(value: float | None, places: str = "0.0001") -> Decimal | None:
    return None if value is None else Decimal(repr(value)).quantize(Decimal(places))


@strawberry.type(name="TierEffectOutcome", description="The jump of one outcome at the tier's threshold")
class TierEffectOutcomeType:
    outcome: str = strawberry.field(
        description="spend: net spend in the window; churn: 1 if the customer bought nothing in it; nps: mean answer"
    )
    effect: Decimal | None
    ci_low: Decimal | None = strawberry.field(description="95 % confidence interval, lower bound")
    ci_high: Decimal | None
    std_error: Decimal | None
    below: int = strawberry.field(description="customers within the bandwidth below the threshold")
    above: int
    too_small: bool = strawberry.field(description="too few customers near the threshold to tell: no estimate")
    note: str

    @classmethod
    def build(cls, o: Any) -> TierEffectOutcomeType:
        e = o.estimate
        places = "0.01" if o.outcome == "spend" else "0.0001"
        return cls(
            outcome=o.outcome,
            effect=_dec(e.effect, places),
            ci_low=_dec(e.ci_low, places),
            ci_high=_dec(e.ci_high, places),
            std_error=_dec(e.std_error, places),
            below=e.below,
            above=e.above,
            too_small=e.too_small,
            note=e.note,
        )


@strawberry.type(name="TierEffect", description="The measured effect of being let into a tier")
class TierEffectType:
    tier: str
    threshold: Decimal | None = strawberry.field(description="the spend (spend_12m) the tier's entry rule asks for")
    start: dt.datetime
    end: dt.datetime
    window_days: int
    bandwidth: Decimal | None
    method: str
    outcomes: list[TierEffectOutcomeType]

    @classmethod
    def build(cls, r: Any) -> TierEffectType:
        return cls(
            tier=r.tier,
            threshold=r.threshold,
            start=r.start,
            end=r.stop,
            window_days=r.window_days,
            bandwidth=r.bandwidth,
            method=r.note,
            outcomes=[TierEffectOutcomeType.build(o) for o in r.outcomes],
        )


@strawberry.type(name="BenefitHoldoutOutcome", description="Treated against held-out customers on one outcome")
class BenefitHoldoutOutcomeType:
    outcome: str = strawberry.field(
        description="spend: net spend in the holdout window; churn: 1 if the customer bought nothing in it; "
        "nps: mean answer (customers who answered)"
    )
    treated_mean: Decimal | None
    held_mean: Decimal | None
    effect: Decimal | None = strawberry.field(description="treated mean minus held-out mean")
    ci_low: Decimal | None = strawberry.field(description="95 % confidence interval, lower bound")
    ci_high: Decimal | None
    std_error: Decimal | None
    treated: int = strawberry.field(description="treated customers with this outcome")
    held: int
    too_small: bool = strawberry.field(description="too few customers in a group to tell: no estimate")
    note: str

    @classmethod
    def build(cls, o: Any) -> BenefitHoldoutOutcomeType:
        c = o.comparison
        places = "0.01" if o.outcome == "spend" else "0.0001"
        return cls(
            outcome=o.outcome,
            treated_mean=_dec(c.treated_mean, places),
            held_mean=_dec(c.held_mean, places),
            effect=_dec(c.effect, places),
            ci_low=_dec(c.ci_low, places),
            ci_high=_dec(c.ci_high, places),
            std_error=_dec(c.std_error, places),
            treated=c.treated,
            held=c.held,
            too_small=c.too_small,
            note=c.note,
        )


@strawberry.type(name="BenefitHoldoutGroup", description="The customers of one group of the holdout")
class BenefitHoldoutGroupType:
    customers: int
    complete: int = strawberry.field(description="of them, those whose holdout window is over")


@strawberry.type(
    name="BenefitHoldoutReport",
    description="Customers upgraded to a tier while its policy held some out: those whose new benefits were "
    "withheld against those who got them, on what they did after the upgrade",
)
class BenefitHoldoutReportType:
    tier: str
    since: dt.datetime | None = strawberry.field(name="from")
    until: dt.datetime = strawberry.field(name="to")
    treated: BenefitHoldoutGroupType
    held: BenefitHoldoutGroupType
    method: str
    outcomes: list[BenefitHoldoutOutcomeType]

    @classmethod
    def build(cls, r: Any) -> BenefitHoldoutReportType:
        return cls(
            tier=r.tier,
            since=r.since,
            until=r.until,
            treated=BenefitHoldoutGroupType(customers=r.treated, complete=r.treated_complete),
            held=BenefitHoldoutGroupType(customers=r.held, complete=r.held_complete),
            method=r.method,
            outcomes=[BenefitHoldoutOutcomeType.build(o) for o in r.outcomes],
        )
