"""GraphQL inputs of tiers: policy drafts and their tiers, customer tier overrides."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

# The tiers' benefits as plain strings predate the benefit catalogue (issue 15), which gives each benefit a kind,
# a cost model, its eligible tiers and a budget, versioned with the policy; the strings are kept (stored and
# answered as before) for the clients that use them, and deprecated so that new ones use the catalogue.
DEPRECATED_BENEFITS = (
    "Plain labels without kind, cost or eligibility, kept for existing clients: use benefitCatalogue "
    "(Benefit.name, Benefit.tiers) and setTierPolicyBenefits"
)


@strawberry.input
class TierInput:
    code: str
    name: str
    rank: int = strawberry.field(description="0 and up; the lowest rank is the base tier (entry rule {always: true})")
    entry_rule: JSON = strawberry.field(
        description='e.g. {"all": [{"metric": "spend_12m", "op": ">=", "value": 1000}]}, {"any": [...]}, '
        '{"score": {"weights": {"spend_12m": 0.01}, "min": 40}} or {"always": true}'
    )
    retain_rule: JSON = strawberry.field(description="Looser than the entry rule: the tier is kept while it holds")
    benefits: list[str] | None = strawberry.field(default=None, deprecation_reason=DEPRECATED_BENEFITS)


@strawberry.input
class CreateTierPolicyDraftInput:
    name: str
    description: str | None = None
    grace_days: int = 30
    min_stay_days: int = 30
    spend_window_days: int = 365
    tiers: list[TierInput] | None = strawberry.field(default=None, description="required unless copyFrom is given")
    copy_from: strawberry.ID | None = strawberry.field(default=None, description="start from this policy's tiers")


@strawberry.input
class UpdateTierPolicyDraftInput:
    id: strawberry.ID
    expected_revision: int
    name: str | None = None
    description: str | None = None
    grace_days: int | None = None
    min_stay_days: int | None = None
    spend_window_days: int | None = None
    tiers: list[TierInput] | None = strawberry.field(default=None, description="replaces every tier when given")


@strawberry.input
class OverrideCustomerTierInput:
    customer_id: strawberry.ID
    tier: str
    reason: str
    expires_at: dt.datetime


@strawberry.input
class ClearCustomerTierOverrideInput:
    customer_id: strawberry.ID
    reason: str
