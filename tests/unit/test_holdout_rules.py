"""The benefit holdout's rules without a database: what a holdout may be, the draw, which benefits a held-out
customer is refused and when, and the comparison of the groups against a hand computation."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest

from domain import holdout
from domain.errors import Invalid

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("share", "days"), [("0", 0), ("0.1", 30), ("0.5", 365), ("0.0001", 1)])
def test_valid_holdouts(share: str, days: int) -> None:
    holdout.validate(Decimal(share), days)


@pytest.mark.parametrize(
    ("share", "days", "field"),
    [("0.6", 30, "share"), ("-0.1", 30, "share"), ("0.00001", 30, "share"), ("0.1", 0, "days"), ("0", 30, "days"),
     ("0.1", 366, "days"), ("NaN", 30, "share")],
)  # fmt: skip
def test_invalid_holdouts(share: str, days: int, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        holdout.validate(Decimal(share), days)
    assert [e.field for e in caught.value.errors] == [field]


def test_the_threshold_of_a_share() -> None:
    assert holdout.threshold(Decimal("0.5")) == 2**31
    assert holdout.threshold(Decimal("0.0001")) == 429497  # ceil(0.0001 * 2^32)
    assert holdout.threshold(Decimal(0)) == 0


def test_the_draw_is_deterministic_and_its_share_converges() -> None:
    ids = [uuid.UUID(int=n * 7919 + 13) for n in range(4000)]
    assert [holdout.draw(i, 3, "gold") for i in ids[:50]] == [holdout.draw(i, 3, "gold") for i in ids[:50]]
    held = sum(holdout.held(i, 3, "gold", Decimal("0.2")) for i in ids)
    assert abs(held / len(ids) - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(ids))
    assert not any(holdout.held(i, 3, "gold", Decimal(0)) for i in ids)
    # another version or tier is another draw
    assert [holdout.draw(i, 3, "gold") for i in ids[:20]] != [holdout.draw(i, 4, "gold") for i in ids[:20]]


def test_a_held_customer_keeps_the_benefits_of_the_tier_it_came_from_within_the_window_only() -> None:
    a = holdout.Assignment(True, "silver", "gold", T0, T0 + dt.timedelta(days=30))
    inside, after = T0 + dt.timedelta(days=3), T0 + dt.timedelta(days=30)
    assert a.withholds(["gold", "platinum"], inside)
    assert not a.withholds(["silver", "gold"], inside)  # silver had it: still given
    assert not a.withholds(["gold"], after)  # the window is over
    assert not a.withholds(["gold"], T0 - dt.timedelta(seconds=1))  # a use before the upgrade
    treated = holdout.Assignment(False, "silver", "gold", T0, T0 + dt.timedelta(days=30))
    assert not treated.withholds(["gold"], inside)
    assert "until 2026-03-31 00:00 UTC" in a.message("Lounge")


def test_compare_groups_by_hand() -> None:
    treated = [float(10 + n % 5) for n in range(40)]  # 10..14, 8 of each: mean 12, variance 2 * 40 / 39
    held = [float(n % 2) * 4 + 8 for n in range(30)]  # 8 and 12, 15 of each: mean 10, variance 4 * 30 / 29
    got = holdout.compare_groups(treated, held)
    se = math.sqrt((2 * 40 / 39) / 40 + (4 * 30 / 29) / 30)
    assert (got.treated, got.held, got.too_small) == (40, 30, False)
    assert got.treated_mean == pytest.approx(12)
    assert got.held_mean == pytest.approx(10)
    assert got.effect == pytest.approx(2)
    assert got.std_error == pytest.approx(se)
    assert (got.ci_low, got.ci_high) == (pytest.approx(2 - holdout.Z95 * se), pytest.approx(2 + holdout.Z95 * se))
    assert got.note == "the interval excludes zero"
    same = holdout.compare_groups(treated, treated[:30])
    assert same.ci_low is not None
    assert same.ci_high is not None
    assert same.ci_low < 0 < same.ci_high
    assert same.note == "the interval includes zero: no effect shown"


def test_too_small_to_tell() -> None:
    got = holdout.compare_groups([1.0] * 40, [0.0] * 29)
    assert (got.effect, got.ci_low, got.std_error, got.too_small) == (None, None, None, True)
    assert (got.treated_mean, got.held_mean) == (1.0, 0.0)
    assert got.note == (
        "sample too small to tell: 40 treated and 29 held-out customers (at least 30 in each group needed)"
    )
