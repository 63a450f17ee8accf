"""GraphQL types of tiers: the tiers and rules of a policy, tier changes, explanations, reports of a run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import ChangeType, PolicyStatus
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import ConnectionBase, Edge, Node, UserError
from api.graphql.customers.types import CustomerType
from api.graphql.tiers.inputs import DEPRECATED_BENEFITS
from domain import tiers as rules


@strawberry.type(name="Tier")
class TierType:
    code: str
    name: str
    rank: int
    benefits: list[str] = strawberry.field(deprecation_reason=DEPRECATED_BENEFITS)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TierType:
        return cls(code=row["code"], name=row["name"], rank=row["rank"], benefits=list(row.get("benefits") or []))


@strawberry.type(name="TierRule")
class TierRuleType:
    code: str
    entry_rule: JSON
    retain_rule: JSON
    name: str | None = None
    rank: int | None = None
    benefits: list[str] | None = strawberry.field(default=None, deprecation_reason=DEPRECATED_BENEFITS)


@strawberry.type(name="TierPolicy")
class TierPolicyType(Node):
    db_id: strawberry.Private[UUID]
    version: int
    name: str
    status: PolicyStatus
    grace_days: int
    min_stay_days: int
    created_by: str | None
    created_at: dt.datetime
    activated_by: str | None
    activated_at: dt.datetime | None
    spend_window_days: int | None = None
    description: str | None = None
    revision: int = strawberry.field(default=1, description="Edit counter of a draft (expectedRevision)")
    updated_at: dt.datetime | None = None
    updated_by: str | None = None
    retired_at: dt.datetime | None = None
    retired_by: str | None = None

    @strawberry.field
    async def tiers(self, info: Info[Context, None]) -> list[TierRuleType] | None:
        rows = await context_of(info).loaders.tier_policy_tiers.load(self.db_id)
        return [
            TierRuleType(
                code=r["code"],
                entry_rule=r["entry_rule"],
                retain_rule=r["retain_rule"],
                name=r["name"],
                rank=r["rank"],
                benefits=list(r["benefits"] or []),
            )
            for r in rows
        ]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TierPolicyType:
        return cls(
            id=strawberry.ID(to_global_id("TierPolicy", row["id"])),
            db_id=row["id"],
            version=row["version"],
            name=row["name"],
            status=PolicyStatus(row["status"]),
            grace_days=row["grace_days"],
            min_stay_days=row["min_stay_days"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            activated_by=row["activated_by"],
            activated_at=row["activated_at"],
            spend_window_days=row.get("spend_window_days"),
            description=row.get("description"),
            revision=row.get("revision", 1),
            updated_at=row.get("updated_at"),
            updated_by=row.get("updated_by"),
            retired_at=row.get("retired_at"),
            retired_by=row.get("retired_by"),
        )


@strawberry.type(name="TierChange")
class TierChangeType:
    customer_ref: strawberry.Private[UUID]
    id: strawberry.ID
    from_tier: str | None
    to_tier: str | None
    policy_version: int | None
    change_type: ChangeType | None
    reason: str | None
    metrics: JSON | None
    actor: str | None
    changed_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TierChangeType:
        return cls(
            customer_ref=row["customer_id"],
            id=strawberry.ID(str(row["id"])),
            from_tier=row["from_tier"],
            to_tier=row["to_tier"],
            policy_version=row["policy_version"],
            change_type=ChangeType(row["change_type"]),
            reason=row["reason"],
            metrics=row["metrics"],
            actor=row["actor"],
            changed_at=row["changed_at"],
        )


@strawberry.type(name="TierChangeConnection")
class TierChangeConnection(ConnectionBase):
    edges: list[Edge[TierChangeType]]


@strawberry.enum(description="Why a customer is in its tier")
class TierBasis(Enum):
    OVERRIDE = "override"
    BASE = "base"
    ENTRY = "entry"
    RETAIN = "retain"
    GRACE = "grace"
    UNPLACED = "unplaced"


@strawberry.type(name="TierConditionCheck", description="One condition of a rule against the customer's metrics")
class TierConditionCheckType:
    metric: str
    description: str
    op: str
    threshold: float
    actual: float | None = strawberry.field(description="null when unknown or not readable by the caller")
    holds: bool
    gap: float | None = strawberry.field(
        description="how far off: how much the metric must rise (>, >=), fall (<, <=) or move (==); 0 when met"
    )


@strawberry.type(name="TierScoreTerm")
class TierScoreTermType:
    metric: str
    weight: float
    actual: float | None
    needed_alone: float | None = strawberry.field(description="how much more of this metric alone closes the gap")


@strawberry.type(name="TierRuleCheck", description="A rule against the customer's metrics")
class TierRuleCheckType:
    kind: str = strawberry.field(description="always, all, any or score")
    holds: bool
    text: str
    conditions: list[TierConditionCheckType]
    score: float | None
    min_score: float | None
    points_missing: float | None
    terms: list[TierScoreTermType]

    @classmethod
    def build(cls, check: rules.RuleCheck | None, show: Callable[[str], bool]) -> TierRuleCheckType | None:
        if check is None:
            return None
        return cls(
            kind=check.kind,
            holds=check.holds,
            text=check.words(show),
            conditions=[
                TierConditionCheckType(
                    metric=c.metric,
                    description=rules.METRICS[c.metric][0],
                    op=c.op,
                    threshold=c.threshold,
                    actual=c.actual,
                    holds=c.holds,
                    gap=c.gap,
                )
                for c in check.conditions
            ],
            score=check.score,
            min_score=check.min_score,
            points_missing=check.points_missing,
            terms=[
                TierScoreTermType(metric=t.metric, weight=t.weight, actual=t.actual, needed_alone=t.needed_alone)
                for t in check.terms
            ],
        )


@strawberry.type(name="TierExplanation")
class TierExplanationType:
    tier: str | None
    tier_name: str | None
    basis: TierBasis
    since: dt.datetime | None
    policy_version: int
    text: str = strawberry.field(description="The explanation in words")
    held_by: TierRuleCheckType | None = strawberry.field(description="The rule that keeps the customer in its tier")
    entry_rule: TierRuleCheckType | None
    retain_rule: TierRuleCheckType | None
    grace_since: dt.datetime | None
    downgrade_not_before: dt.datetime | None = strawberry.field(
        description="In grace: the earliest moment of a downgrade (grace period and minimum stay over)"
    )
    min_stay_until: dt.datetime | None
    next_tier: str | None
    next_tier_name: str | None
    to_next_tier: TierRuleCheckType | None = strawberry.field(
        description="The next tier's entry rule, with the gap per condition (for a score: the points missing)"
    )
    pending: str = strawberry.field(
        description="What the engine does at the next evaluation: keep, up, grace, wait, down, recover, override…"
    )


@strawberry.type(name="TierShare", description="One tier's customers and their spend in the policy window")
class TierShareType:
    tier: str | None
    name: str | None
    rank: int | None
    customers: int
    customer_share: float
    revenue: Decimal | None
    revenue_share: float | None


@strawberry.type(name="TierMigrationCell", description="Customers that went from one tier to another")
class TierMigrationCellType:
    from_tier: str | None = strawberry.field(description="null: not tiered at the start")
    to_tier: str
    customers: int
    revenue: Decimal | None = strawberry.field(description="their spend in the policy window (simulations)")


@strawberry.type(name="TierChangeCount")
class TierChangeCountType:
    change_type: str
    count: int


@strawberry.type(name="TierDistribution")
class TierDistributionType:
    policy_version: int | None
    customers: int
    revenue: Decimal | None
    tiers: list[TierShareType]


@strawberry.type(name="TierMigrationReport")
class TierMigrationReportType:
    since: dt.datetime
    until: dt.datetime
    customers: int
    moved: int = strawberry.field(description="customers whose tier at the end differs from the one at the start")
    cells: list[TierMigrationCellType]
    changes: list[TierChangeCountType] = strawberry.field(description="history rows of the period by change type")


@strawberry.type(name="TierBenefitRate", description="The monthly benefit cost of one customer of a tier")
class TierBenefitRateType:
    tier: str
    now: Decimal | None = strawberry.field(description="under the active policy's benefits")
    simulated: Decimal | None = strawberry.field(description="under the simulated policy's benefits")


@strawberry.type(
    name="TierBenefitCost",
    description="The monthly benefit cost before and after the simulated moves, at the rates of use observed over "
    "the look-back period (each benefit's uses per eligible customer, priced by the simulated policy's cost model)",
)
class TierBenefitCostType:
    lookback_days: int
    monthly_now: Decimal
    monthly_at_activation: Decimal
    monthly_eventual: Decimal
    change_at_activation: Decimal
    rates: list[TierBenefitRateType]
    unobserved_benefits: list[str] = strawberry.field(
        description="benefits of the simulated policy with no observed rate of use (new ones): counted as 0"
    )

    @classmethod
    def build(cls, p: Any) -> TierBenefitCostType:
        tiers = sorted(set(p.rate_now) | set(p.rate_simulated))
        return cls(
            lookback_days=p.lookback_days,
            monthly_now=p.monthly_now,
            monthly_at_activation=p.monthly_at_activation,
            monthly_eventual=p.monthly_eventual,
            change_at_activation=p.monthly_at_activation - p.monthly_now,
            rates=[
                TierBenefitRateType(tier=t, now=p.rate_now.get(t), simulated=p.rate_simulated.get(t)) for t in tiers
            ],
            unobserved_benefits=list(p.unobserved),
        )


@strawberry.type(name="TierSimulation", description="What activating a policy would do now; nothing is changed")
class TierSimulationType:
    policy: TierPolicyType | None
    customers: int
    changing: int = strawberry.field(description="customers whose tier the activation changes at once")
    moves: list[TierMigrationCellType] = strawberry.field(description="current tier -> tier at activation")
    eventual_moves: list[TierMigrationCellType] = strawberry.field(
        description="current tier -> tier once running grace periods and minimum stays are over (same metrics)"
    )
    tiers: list[TierShareType] = strawberry.field(description="customers and revenue share per tier at activation")
    eventual_tiers: list[TierShareType]
    benefit_cost: TierBenefitCostType | None = strawberry.field(
        default=None, description="the projected monthly cost of benefits before and after the moves"
    )


@strawberry.type(name="TierRun", description="A full re-tier: batches by customer id, resumable from its checkpoint")
class TierRunType:
    id: strawberry.ID
    policy_version: int
    status: str
    actor: str | None
    batch_size: int
    customers_total: int
    customers_done: int
    batches: int
    changed: int
    started_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> TierRunType:
        return cls(
            id=strawberry.ID(str(r["id"])),
            policy_version=r["policy_version"],
            status=r["status"],
            actor=r["actor"],
            batch_size=r["batch_size"],
            customers_total=r["customers_total"],
            customers_done=r["customers_done"],
            batches=r["batches"],
            changed=r["changed"],
            started_at=r["started_at"],
            updated_at=r["updated_at"],
            finished_at=r["finished_at"],
        )


@strawberry.enum
class RetierMode(Enum):
    INLINE = "inline"
    DEFERRED = "deferred"


@strawberry.type(name="TierRetier", description="The full re-tier an activation started")
class TierRetierType:
    mode: RetierMode
    customers: int
    changes: int | None = strawberry.field(description="tier changes made (inline only)")
    grace_started_or_ended: int | None
    job_id: strawberry.ID | None
    message: str


@strawberry.type
class TierPolicyPayload:
    policy: TierPolicyType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ActivateTierPolicyPayload:
    policy: TierPolicyType | None = None
    retired_version: int | None = None
    retier: TierRetierType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DiscardTierPolicyDraftPayload:
    discarded_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CustomerTierPayload:
    customer: CustomerType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
