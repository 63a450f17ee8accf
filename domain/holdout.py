"""The benefit holdout: measuring a tier's effect directly (issue 15).

A tier policy may hold out a share of the customers it upgrades: for ``days`` after the upgrade, the benefits of
the new tier are withheld from them (they keep those of the tier they came from). Everyone upgraded while the
holdout is in force is assigned to one of two groups, recorded with the upgrade in the same transaction
(infra/tiering.py): *held* (benefits withheld) or *treated* (benefits given). As the draw ignores everything
about the customer, the two groups differ only by chance and by the benefits; comparing what they do after the
upgrade (``compare_groups``) measures what the benefits change, without the assumptions of the regression
discontinuity (domain/effect.py).

- Off by default (share 0); a share is at most ``MAX_SHARE`` (withholding more than half would make the tier's
  promise the exception), a period 1 to ``MAX_DAYS`` days.
- The draw is deterministic: an md5 of (customer id, policy version, tier) read as a number in [0, 1). The same
  upgrade always falls in the same group (a retried transaction cannot re-roll it; an auditor can recompute
  it) and the share of held customers converges on ``share``. ``draw`` here explains the SQL that decides
  (infra/tiering.py ``holdout_draw_sql``); a test keeps the two equal over generated ids.
- A customer already held out is not drawn again when upgraded once more before its holdout ends.
- Held-out customers are left out of the fairness report while withheld (a gold customer without gold's
  benefits is not evidence about how gold is served).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from domain.errors import Invalid, ValidationFailed

MAX_SHARE = Decimal("0.5")
MAX_DAYS = 365
SCALE = 2**32  # the draw is the first 32 bits of the md5
MIN_PER_GROUP = 30
Z95 = 1.959963984540054
WITHHELD = "WITHHELD"


def validate(share: Decimal, days: int) -> None:
    """A holdout is off (share 0 and days 0) or a share in (0, MAX_SHARE] with 4 decimals for 1 to MAX_DAYS."""
    errors = []
    if not (share.is_finite() and 0 <= share <= MAX_SHARE and share == share.quantize(Decimal("0.0001"))):
        errors.append(ValidationFailed(f"share is between 0 and {MAX_SHARE}, with at most 4 decimals", field="share"))
    if not 0 <= days <= MAX_DAYS:
        errors.append(ValidationFailed(f"days is between 0 and {MAX_DAYS}", field="days"))
    if not errors and (share == 0) != (days == 0):
        errors.append(ValidationFailed("a holdout needs a share and a number of days (both 0: off)", field="days"))
    if errors:
        raise Invalid(errors)


def draw_key(customer_id: UUID, policy_version: int, tier: str) -> str:
    return f"{customer_id}:{policy_version}:{tier}"


def draw(customer_id: UUID, policy_version: int, tier: str) -> int:
    """The draw of one upgrade, an integer in [0, SCALE)."""
    return int(hashlib.md5(draw_key(customer_id, policy_version, tier).encode()).hexdigest()[:8], 16)


def threshold(share: Decimal) -> int:
    """Held when ``draw < threshold(share)``: the smallest integer not below ``share * SCALE``."""
    return math.ceil(share * SCALE)


def held(customer_id: UUID, policy_version: int, tier: str, share: Decimal) -> bool:
    return draw(customer_id, policy_version, tier) < threshold(share)


@dataclass(frozen=True)
class Assignment:
    """A customer's place in a holdout (``held``) and the window of it."""

    held: bool
    from_tier: str | None
    to_tier: str
    starts_at: dt.datetime
    ends_at: dt.datetime

    def withholds(self, benefit_tiers: Sequence[str], at: dt.datetime) -> bool:
        """A benefit is withheld at ``at`` from a held customer unless the tier it came from had it too."""
        return (
            self.held
            and self.starts_at <= at < self.ends_at
            and (self.from_tier is None or self.from_tier not in benefit_tiers)
        )

    def message(self, benefit_name: str) -> str:
        keeps = f"; the benefits of {self.from_tier} still apply" if self.from_tier else ""
        until = self.ends_at.astimezone(dt.UTC)
        return (
            f"{benefit_name} is withheld from this customer until {until:%Y-%m-%d %H:%M} UTC: "
            f"it was upgraded to {self.to_tier} into the benefit holdout that measures the tier's effect{keeps}"
        )


# ---------------------------------------------------------------- held against treated


@dataclass(frozen=True)
class GroupComparison:
    """Treated minus held, for one outcome: the difference of the means, its 95 % interval, the sample sizes."""

    treated_mean: float | None
    held_mean: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    std_error: float | None
    treated: int
    held: int
    too_small: bool
    note: str


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def compare_groups(treated: Sequence[float], held_out: Sequence[float]) -> GroupComparison:
    """Difference of the means (treated - held) with Welch's standard error ``sqrt(s_t^2/n_t + s_h^2/n_h)``
    (sample variances) and a 95 % normal interval; too small to tell below ``MIN_PER_GROUP`` in a group."""
    nt, nh = len(treated), len(held_out)
    tm = _mean_var(treated)[0] if nt else None
    hm = _mean_var(held_out)[0] if nh else None
    if nt < MIN_PER_GROUP or nh < MIN_PER_GROUP:
        return GroupComparison(
            tm, hm, None, None, None, None, nt, nh, too_small=True,
            note=f"sample too small to tell: {nt} treated and {nh} held-out customers "
            f"(at least {MIN_PER_GROUP} in each group needed)",
        )  # fmt: skip
    (mt, vt), (mh, vh) = _mean_var(treated), _mean_var(held_out)
    effect = mt - mh
    se = math.sqrt(vt / nt + vh / nh)
    low, high = effect - Z95 * se, effect + Z95 * se
    verdict = "the interval excludes zero" if low > 0 or high < 0 else "the interval includes zero: no effect shown"
    return GroupComparison(mt, mh, effect, low, high, se, nt, nh, too_small=False, note=verdict)


METHOD = (
    "randomised holdout: customers upgraded while the policy's holdout was in force, drawn at the upgrade into "
    "the held-out group (the new tier's benefits withheld for the holdout's days) or the treated group; each "
    "outcome is observed from the upgrade to the end of the holdout window (or now, while it runs): net spend, "
    "churn (1: bought nothing), mean NPS answer (only customers who answered); the effect is the treated mean "
    "minus the held-out mean, Welch standard error, 95 % normal interval"
)
