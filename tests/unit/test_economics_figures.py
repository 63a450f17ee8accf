"""The economics figures (domain/economics.py) against a hand computation, rounding included."""

from __future__ import annotations

from decimal import Decimal as D

from domain.economics import TierTotals, economics, to_csv


def totals(tier: str | None, rank: int | None, customers: int, **kw: object) -> TierTotals:
    values: dict[str, object] = {
        "revenue": D(0), "refunds": D(0), "benefit_cost": D(0), "benefit_uses": 0, "complaints": 0,
        "complaint_hours": D(0), "survey_responses": 0,
    }  # fmt: skip
    values.update(kw)
    return TierTotals(tier=tier, rank=rank, customers=customers, **values)  # type: ignore[arg-type]


def test_contribution_per_customer_and_the_tier_below() -> None:
    rows = economics(
        [
            totals("bronze", 0, 3, revenue=D("100.00"), survey_responses=3),
            totals("gold", 2, 1, revenue=D("1000.00"), refunds=D("10.00"), benefit_cost=D("33.333"),
                   complaint_hours=D("1.5"), complaints=1),
            totals("silver", 1, 0),
            totals(None, None, 2, revenue=D("5.00")),
        ],
        hourly_cost=D("40"),
        survey_cost=D("0.25"),
    )  # fmt: skip
    assert [r.tier for r in rows] == ["gold", "silver", "bronze", None]
    gold, silver, bronze, none = rows
    assert gold.net_revenue == D("990.00")
    assert gold.benefit_cost == D("33.33")
    assert gold.service_cost == D("60.00")
    assert gold.contribution == D("896.67")
    assert gold.contribution_per_customer == D("896.67")
    # the next tier down is silver, which has no customers: no comparison
    assert gold.against_tier_below is None
    assert silver.contribution_per_customer is None
    assert bronze.service_cost == D("0.75")
    assert bronze.contribution == D("99.25")
    assert bronze.contribution_per_customer == D("33.08")  # 33.0833… half-even
    assert bronze.against_tier_below is None
    assert none.against_tier_below is None
    assert to_csv(rows).splitlines()[1].startswith("gold,1,1000.00,10.00,990.00,0,33.33,1,1.50,0,60.00,896.67,896.67,")


def test_comparison_with_the_tier_below() -> None:
    rows = economics(
        [totals("silver", 1, 2, revenue=D("300")), totals("bronze", 0, 4, revenue=D("100"))],
        hourly_cost=D("40"),
        survey_cost=D("0.5"),
    )
    assert [(r.tier, r.contribution_per_customer, r.against_tier_below) for r in rows] == [
        ("silver", D("150.00"), D("125.00")),
        ("bronze", D("25.00"), None),
    ]
