"""What each tier earns and costs in a period (issue 15): the figures of the economics report, from the totals
per tier the repository sums (infra/repos/economics.py).

Per tier (the customers' tier now):

- ``revenue``: purchases made in the period; ``refunds``: refunds made in the period; ``net_revenue`` =
  revenue - refunds;
- ``benefit_cost``: the cost of benefit uses in the period (as computed when each was used);
- ``service_cost`` = complaint handling hours x the hourly cost + survey responses x the cost per survey,
  where a complaint opened in the period is handled from its opening until it is resolved (or until the end
  of the period, or now, while it is open), less the time it was paused (waiting on the customer, on hold);
- ``contribution`` = net revenue - benefit cost - service cost; ``contribution_per_customer`` its share per
  customer of the tier (None for a tier without customers);
- ``against_tier_below``: contribution per customer minus that of the next tier down (None for the lowest
  tier, or when either has no customers).

Money is ``Decimal``, rounded to cents once, at the end of each figure.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class TierTotals:
    """What the repository sums per tier over the period."""

    tier: str | None
    rank: int | None
    customers: int
    revenue: Decimal
    refunds: Decimal
    benefit_cost: Decimal
    benefit_uses: int
    complaints: int
    complaint_hours: Decimal
    survey_responses: int


@dataclass(frozen=True)
class TierEconomics:
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
    against_tier_below: Decimal | None


def economics(totals: list[TierTotals], *, hourly_cost: Decimal, survey_cost: Decimal) -> list[TierEconomics]:
    """The report's rows, highest rank first (tiers without a rank last)."""
    ordered = sorted(totals, key=lambda t: (t.rank is None, -(t.rank or 0), t.tier or ""))
    rows: list[TierEconomics] = []
    for t in ordered:
        net = _cents(t.revenue - t.refunds)
        service = _cents(t.complaint_hours * hourly_cost + t.survey_responses * survey_cost)
        benefit = _cents(t.benefit_cost)
        contribution = net - benefit - service
        per_customer = _cents(contribution / t.customers) if t.customers else None
        rows.append(
            TierEconomics(
                tier=t.tier,
                rank=t.rank,
                customers=t.customers,
                revenue=_cents(t.revenue),
                refunds=_cents(t.refunds),
                net_revenue=net,
                benefit_uses=t.benefit_uses,
                benefit_cost=benefit,
                complaints=t.complaints,
                complaint_hours=t.complaint_hours.quantize(CENT),
                survey_responses=t.survey_responses,
                service_cost=service,
                contribution=contribution,
                contribution_per_customer=per_customer,
                against_tier_below=None,
            )
        )
    ranked = [r for r in rows if r.rank is not None]
    out: list[TierEconomics] = []
    for r in rows:
        below = next((b for b in ranked if r.rank is not None and b.rank is not None and b.rank < r.rank), None)
        diff = None
        if (
            below is not None
            and r.contribution_per_customer is not None
            and below.contribution_per_customer is not None
        ):
            diff = r.contribution_per_customer - below.contribution_per_customer
        out.append(TierEconomics(**{**r.__dict__, "against_tier_below": diff}))
    return out


COLUMNS = (
    "tier",
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


def to_csv(rows: list[TierEconomics]) -> str:
    """The rows as CSV (RFC 4180, a header line; empty cells for missing figures)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(["" if getattr(r, c) is None else str(getattr(r, c)) for c in COLUMNS])
    return out.getvalue()
