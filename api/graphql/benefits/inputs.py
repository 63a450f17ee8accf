"""GraphQL inputs of refunds, benefits and their uses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum

import strawberry


@strawberry.input
class RefundInput:
    purchase_id: strawberry.ID | None = strawberry.field(default=None, description="the purchase refunded, or:")
    purchase_external_id: str | None = strawberry.field(
        default=None, description="the external id the purchase was recorded with by the same writer"
    )
    external_id: str | None = strawberry.field(default=None, description="idempotency key of the refund")
    amount: Decimal | None = strawberry.field(
        default=None, description="at most what is left of the purchase; omitted: all that is left"
    )
    reason: str | None = strawberry.field(
        default=None,
        description="a code: damaged, not_as_described, wrong_item, late, changed_mind, price_adjustment, other",
    )
    refunded_at: dt.datetime | None = None


@strawberry.input
class RecordRefundsInput:
    refunds: list[RefundInput]


@strawberry.enum(name="BenefitKind")
class BenefitKind(Enum):
    DISCOUNT = "discount"
    FREE_SHIPPING = "free_shipping"
    PRIORITY_SUPPORT = "priority_support"
    DEDICATED_MANAGER = "dedicated_manager"
    GIFT = "gift"
    POINTS_MULTIPLIER = "points_multiplier"
    EVENT_ACCESS = "event_access"
    OTHER = "other"


@strawberry.enum(name="BenefitCostModel")
class BenefitCostModel(Enum):
    FIXED_PER_USE = "fixed_per_use"
    PERCENT_OF_ORDER = "percent_of_order"
    PER_CUSTOMER_MONTH = "per_customer_month"


@strawberry.enum(name="BudgetPeriod")
class BudgetPeriod(Enum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@strawberry.input
class BenefitInput:
    code: str = strawberry.field(description="a-z, 0-9, _; unique within the policy; what uses name")
    name: str
    kind: BenefitKind
    cost_model: BenefitCostModel
    cost_value: Decimal = strawberry.field(
        description="money per use or per customer and month; a percentage (0-100) of the order for PERCENT_OF_ORDER"
    )
    tiers: list[str] = strawberry.field(description="the tier codes eligible for it")
    budget: Decimal | None = strawberry.field(default=None, description="per eligible tier and budget period")
    budget_period: BudgetPeriod | None = None
    description: str | None = None


@strawberry.input
class SetTierPolicyBenefitsInput:
    policy_id: strawberry.ID
    expected_revision: int
    benefits: list[BenefitInput]


@strawberry.input
class SetTierPolicyHoldoutInput:
    policy_id: strawberry.ID
    expected_revision: int
    share: Decimal = strawberry.field(
        description="the share (0 to 0.5, 4 decimals) of the customers this policy upgrades whose new tier's "
        "benefits are withheld; 0: off"
    )
    days: int = strawberry.field(description="how long they are withheld after the upgrade (1-365; 0 with share 0)")


@strawberry.input
class RedemptionInput:
    benefit_code: str
    customer_id: strawberry.ID | None = None
    customer_external_ref: str | None = None
    external_id: str | None = strawberry.field(default=None, description="idempotency key of the use")
    order_amount: Decimal | None = strawberry.field(
        default=None, description="the order the benefit was used on (required for PERCENT_OF_ORDER)"
    )
    redeemed_at: dt.datetime | None = None


@strawberry.input
class RecordBenefitRedemptionsInput:
    redemptions: list[RedemptionInput]
