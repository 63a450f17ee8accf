"""Benefits with costs: what a tier gives, what it costs, and who may use it.

A benefit belongs to one tier policy version (it is drafted, activated and retired with the policy), has a
kind (what it is), a cost model (how using it costs money), the tiers eligible for it, and optionally a
budget per tier and period.

Cost models, computed when the benefit is used (``cost_of_use``):

- ``fixed_per_use``: ``cost_value`` each time it is used (a gift, a free shipment);
- ``percent_of_order``: ``cost_value`` percent of the order it was used on (a discount); the order amount
  is required;
- ``per_customer_month``: ``cost_value`` once per customer and calendar month (UTC) in which it is used
  (priority support, a dedicated manager): the first use in a month costs it, further uses that month 0.

Budgets: the cost of uses by customers of one tier within one period (calendar month, quarter or year,
UTC). A use that brings the spent share to ``WARN_SHARE`` or more is recorded with a warning; one that
passes the budget is recorded with an "exceeded" warning (the benefit was given already: the budget
informs, it does not refuse).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from domain.errors import Invalid, ValidationFailed

KINDS = (
    "discount",
    "free_shipping",
    "priority_support",
    "dedicated_manager",
    "gift",
    "points_multiplier",
    "event_access",
    "other",
)
COST_MODELS = ("fixed_per_use", "percent_of_order", "per_customer_month")
BUDGET_PERIODS = ("month", "quarter", "year")
WARN_SHARE = Decimal("0.8")
CENT = Decimal("0.01")
MAX_BENEFITS = 50
MAX_COST = Decimal("1000000")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class BenefitSpec:
    code: str
    name: str
    kind: str
    cost_model: str
    cost_value: Decimal  # money (fixed, per customer-month) or a percentage (percent of order)
    tiers: list[str] = field(default_factory=list)
    budget: Decimal | None = None
    budget_period: str | None = None
    description: str | None = None

    def eligible(self, tier: str | None) -> bool:
        return tier is not None and tier in self.tiers


def _money(value: Decimal) -> bool:
    return value.is_finite() and value == value.quantize(CENT)


def validate_benefits(benefits: list[BenefitSpec], tier_codes: set[str]) -> None:
    """A policy's benefits as a whole: unique codes, known kinds, models and tiers, sensible costs."""
    errors: list[ValidationFailed] = []
    if len(benefits) > MAX_BENEFITS:
        errors.append(ValidationFailed(f"at most {MAX_BENEFITS} benefits per policy", field="benefits"))
    seen: set[str] = set()
    for i, b in enumerate(benefits):
        at = f"benefits[{i}]"
        if not _CODE.match(b.code):
            errors.append(ValidationFailed("a code is 1-40 of a-z, 0-9, _ starting with a letter", field=f"{at}.code"))
        elif b.code in seen:
            errors.append(ValidationFailed(f"benefit code '{b.code}' is given twice", field=f"{at}.code"))
        seen.add(b.code)
        if not 0 < len(b.name) <= 200:
            errors.append(ValidationFailed("a name has 1 to 200 characters", field=f"{at}.name"))
        if b.description is not None and len(b.description) > 2000:
            errors.append(ValidationFailed("a description has at most 2000 characters", field=f"{at}.description"))
        if b.kind not in KINDS:
            errors.append(ValidationFailed(f"kind is one of {', '.join(KINDS)}", field=f"{at}.kind"))
        if b.cost_model not in COST_MODELS:
            errors.append(ValidationFailed(f"costModel is one of {', '.join(COST_MODELS)}", field=f"{at}.costModel"))
        if b.cost_model == "percent_of_order":
            if not (b.cost_value.is_finite() and 0 <= b.cost_value <= 100):
                errors.append(ValidationFailed("a percentage is between 0 and 100", field=f"{at}.costValue"))
        elif not (_money(b.cost_value) and 0 <= b.cost_value <= MAX_COST):
            errors.append(
                ValidationFailed(f"a cost is between 0 and {MAX_COST}, with 2 decimals", field=f"{at}.costValue")
            )
        unknown = sorted(set(b.tiers) - tier_codes)
        if not b.tiers:
            errors.append(ValidationFailed("name at least one eligible tier", field=f"{at}.tiers"))
        elif unknown:
            errors.append(ValidationFailed(f"the policy has no tier {', '.join(unknown)}", field=f"{at}.tiers"))
        if (b.budget is None) != (b.budget_period is None):
            errors.append(ValidationFailed("a budget needs its period, and a period its budget", field=f"{at}.budget"))
        elif b.budget is not None:
            if not (_money(b.budget) and 0 < b.budget <= Decimal("1000000000")):
                errors.append(ValidationFailed("a budget is positive, with 2 decimals", field=f"{at}.budget"))
            if b.budget_period not in BUDGET_PERIODS:
                errors.append(
                    ValidationFailed(f"budgetPeriod is one of {', '.join(BUDGET_PERIODS)}", field=f"{at}.budgetPeriod")
                )
    if errors:
        raise Invalid(errors)


def parse_decimal(value: object, *, field: str) -> Decimal:
    try:
        d = Decimal(str(value))
        if not d.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise ValidationFailed("not a number", field=field) from None
    return d


def cost_of_use(spec: BenefitSpec, order_amount: Decimal | None, *, charged_this_month: bool) -> Decimal:
    """The cost of one use under the benefit's model (``charged_this_month``: the customer used this
    per-customer-month benefit before in the same month)."""
    if spec.cost_model == "fixed_per_use":
        return spec.cost_value
    if spec.cost_model == "percent_of_order":
        if order_amount is None:
            raise ValidationFailed("a percentage-of-order benefit needs the order amount", field="orderAmount")
        return (order_amount * spec.cost_value / 100).quantize(CENT)
    return Decimal(0) if charged_this_month else spec.cost_value


def month_start(at: dt.datetime) -> dt.datetime:
    u = at.astimezone(dt.UTC)
    return dt.datetime(u.year, u.month, 1, tzinfo=dt.UTC)


def period_bounds(period: str, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The budget period (UTC calendar month, quarter or year) holding ``at``: [start, end)."""
    u = at.astimezone(dt.UTC)
    if period == "month":
        start_month, months = u.month, 1
    elif period == "quarter":
        start_month, months = 3 * ((u.month - 1) // 3) + 1, 3
    else:
        start_month, months = 1, 12
    start = dt.datetime(u.year, start_month, 1, tzinfo=dt.UTC)
    end_index = start_month - 1 + months
    end = dt.datetime(u.year + end_index // 12, end_index % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


@dataclass(frozen=True)
class BudgetWarning:
    benefit: str
    tier: str
    period_start: dt.datetime
    budget: Decimal
    spent: Decimal  # including this batch
    exceeded: bool

    @property
    def share(self) -> Decimal:
        return (self.spent / self.budget).quantize(Decimal("0.0001"))

    @property
    def message(self) -> str:
        pct = (self.share * 100).quantize(Decimal("0.1"))
        state = "exceeded" if self.exceeded else "nearly spent"
        return f"budget of {self.benefit} for tier {self.tier} {state}: {self.spent} of {self.budget} ({pct}%)"


def budget_warning(
    spec: BenefitSpec, tier: str, period_start: dt.datetime, spent_before: Decimal, spent_now: Decimal
) -> BudgetWarning | None:
    """A warning when this period's spending crossed ``WARN_SHARE`` of the budget or the budget itself."""
    if spec.budget is None:
        return None
    total = spent_before + spent_now
    if total < spec.budget * WARN_SHARE:
        return None
    return BudgetWarning(spec.code, tier, period_start, spec.budget, total, total > spec.budget)


@dataclass(frozen=True)
class BenefitChange:
    """One benefit that differs between two policy versions: added, removed, or changed (which fields)."""

    code: str
    change: str  # added | removed | changed
    fields: list[str]


COMPARED = ("name", "kind", "cost_model", "cost_value", "tiers", "budget", "budget_period", "description")


def benefit_changes(before: list[BenefitSpec], after: list[BenefitSpec]) -> list[BenefitChange]:
    """What a policy change does to the benefits: by code, in code order."""
    old = {b.code: b for b in before}
    new = {b.code: b for b in after}
    out: list[BenefitChange] = []
    for code in sorted(old.keys() | new.keys()):
        if code not in old:
            out.append(BenefitChange(code, "added", []))
        elif code not in new:
            out.append(BenefitChange(code, "removed", []))
        else:
            a, b = old[code], new[code]
            differing = [
                f
                for f in COMPARED
                if (sorted(getattr(a, f)) if f == "tiers" else getattr(a, f))
                != (sorted(getattr(b, f)) if f == "tiers" else getattr(b, f))
            ]
            if differing:
                out.append(BenefitChange(code, "changed", differing))
    return out


# ---------------------------------------------------------------- projected cost of a policy (simulation)


@dataclass(frozen=True)
class Usage:
    """How a benefit was used over a look-back period: uses, distinct (customer, month) pairs, the orders it was
    used on, and how many customers are in a tier eligible for it now."""

    code: str
    uses: int
    customer_months: int
    order_total: Decimal
    eligible: int


def monthly_cost_per_customer(spec: BenefitSpec, usage: Usage | None, months: Decimal) -> Decimal | None:
    """What the benefit costs per eligible customer and month under ``spec``'s cost model, at the observed rate of
    use (None when it was not offered, or nobody was eligible, in the look-back period)."""
    if usage is None or usage.eligible == 0 or months <= 0:
        return None
    per = Decimal(usage.eligible) * months
    if spec.cost_model == "fixed_per_use":
        return spec.cost_value * usage.uses / per
    if spec.cost_model == "percent_of_order":
        return spec.cost_value / 100 * usage.order_total / per
    return spec.cost_value * usage.customer_months / per


def tier_rates(
    benefits: list[BenefitSpec], usage: dict[str, Usage], months: Decimal
) -> tuple[dict[str, Decimal], list[str]]:
    """Per tier, the monthly benefit cost of one customer of it; and the benefits without an observed rate."""
    rates: dict[str, Decimal] = {}
    unobserved: list[str] = []
    for b in benefits:
        rate = monthly_cost_per_customer(b, usage.get(b.code), months)
        if rate is None:
            unobserved.append(b.code)
            continue
        for tier in b.tiers:
            rates[tier] = rates.get(tier, Decimal(0)) + rate
    return rates, unobserved


def projected_cost(customers_per_tier: dict[str, int], rates: dict[str, Decimal]) -> Decimal:
    """The monthly benefit cost of a distribution of customers over tiers, at the given per-customer rates."""
    return sum((rates.get(t, Decimal(0)) * n for t, n in customers_per_tier.items()), Decimal(0)).quantize(CENT)
