"""Use-cases of what tiers earn (issue 15): the economics report per tier and period, the measured effect
of a tier (a regression-discontinuity estimate at its threshold, domain/effect.py), and the benefit holdout's
comparison of held-out and treated customers (domain/holdout.py).

``tier_economics(db, caller, command)`` is free of GraphQL. The figures and their definitions are in
domain/economics.py; the sums come from one statement over the customers the caller's scope reaches
(infra/repos/economics.py). The hourly cost of complaint handling and the cost per survey response come
from the settings (``TIERWISE_SERVICE_HOURLY_COST``, ``TIERWISE_SURVEY_COST``) unless the command gives them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from api.usecases.caller import Caller
from domain import economics as rules
from domain import effect as effect_rules
from domain import holdout as holdout_rules
from domain.errors import Invalid, NotFound, ValidationFailed
from infra import tiering
from infra.repos import economics as economics_repo
from infra.repos import effect as effect_repo
from infra.repos import holdout as holdout_repo
from infra.repos.base import Executor

MAX_DAYS = 3 * 366
MAX_COST = Decimal("100000")
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class TierEconomicsQuery:
    since: dt.datetime
    until: dt.datetime
    hourly_service_cost: Decimal
    survey_cost: Decimal


@dataclass(frozen=True)
class TierEconomicsReport:
    since: dt.datetime
    until: dt.datetime
    hourly_service_cost: Decimal
    survey_cost: Decimal
    rows: list[rules.TierEconomics]

    @property
    def csv(self) -> str:
        return rules.to_csv(self.rows)


def _check(q: TierEconomicsQuery) -> None:
    errors = []
    if q.since.tzinfo is None or q.until.tzinfo is None:
        errors.append(ValidationFailed("from and to need a time zone", field="from"))
    elif not q.since < q.until <= q.since + dt.timedelta(days=MAX_DAYS):
        errors.append(ValidationFailed(f"to is after from, at most {MAX_DAYS} days later", field="to"))
    for name, value in (("hourlyServiceCost", q.hourly_service_cost), ("surveyCost", q.survey_cost)):
        if not (value.is_finite() and 0 <= value <= MAX_COST):
            errors.append(ValidationFailed(f"{name} is between 0 and {MAX_COST}", field=name))
    if errors:
        raise Invalid(errors)


async def tier_economics(db: Executor, caller: Caller, q: TierEconomicsQuery) -> TierEconomicsReport:
    """Per tier over [since, until): customers, revenue, refunds, benefit cost, service cost, contribution."""
    _check(q)
    totals = await economics_repo.tier_totals(db, q.since, q.until, caller.scope)
    policy = await tiering.load_policy(db)
    present = {t.tier for t in totals}
    zero = Decimal(0)
    totals += [  # every tier of the active policy is listed, with or without customers
        rules.TierTotals(t.code, t.rank, 0, zero, zero, zero, 0, 0, zero, 0)
        for t in (policy.tiers if policy else [])
        if t.code not in present
    ]
    rows = rules.economics(totals, hourly_cost=q.hourly_service_cost, survey_cost=q.survey_cost)
    return TierEconomicsReport(q.since, q.until, q.hourly_service_cost, q.survey_cost, rows)


# ---------------------------------------------------------------- measured effect


MIN_WINDOW, MAX_WINDOW = 7, 730
OUTCOMES = ("spend", "churn", "nps")


@dataclass(frozen=True)
class TierEffectQuery:
    tier: str
    window_days: int = 90
    bandwidth: Decimal | None = None  # default: a quarter of the threshold
    start: dt.datetime | None = None  # default: now - window_days (the window after it is over)


@dataclass(frozen=True)
class OutcomeEffect:
    outcome: str  # spend (net, in the window), churn (1: bought nothing in the window), nps (mean answer)
    estimate: effect_rules.Estimate


@dataclass(frozen=True)
class TierEffectReport:
    tier: str
    threshold: Decimal | None
    start: dt.datetime
    stop: dt.datetime
    window_days: int
    bandwidth: Decimal | None
    outcomes: list[OutcomeEffect]
    note: str


async def tier_effect(db: Executor, caller: Caller, q: TierEffectQuery) -> TierEffectReport:
    """The measured effect of a tier on the following spend, churn and NPS (domain/effect.py has the method)."""
    now = dt.datetime.now(dt.UTC)
    errors = []
    if not MIN_WINDOW <= q.window_days <= MAX_WINDOW:
        errors.append(ValidationFailed(f"windowDays is between {MIN_WINDOW} and {MAX_WINDOW}", field="windowDays"))
    start = q.start or now - dt.timedelta(days=q.window_days)
    if start.tzinfo is None:
        errors.append(ValidationFailed("start needs a time zone", field="start"))
    elif start + dt.timedelta(days=q.window_days) > now + dt.timedelta(minutes=5):
        errors.append(ValidationFailed("the window after start is not over yet", field="start"))
    if q.bandwidth is not None and not (q.bandwidth.is_finite() and q.bandwidth > 0):
        errors.append(ValidationFailed("bandwidth is positive", field="bandwidth"))
    if errors:
        raise Invalid(errors)
    stop = start + dt.timedelta(days=q.window_days)
    policy = await tiering.load_policy(db)
    spec = policy.tier(q.tier) if policy else None
    if policy is None or spec is None:
        raise NotFound(f"the active policy has no tier '{q.tier}'", field="tier")
    found = effect_rules.spend_threshold(spec.entry_rule)
    if found is None:
        return TierEffectReport(
            q.tier, None, start, stop, q.window_days, None, [],
            f"the entry rule of {q.tier} has no spend threshold: there is no threshold to compare around",
        )  # fmt: skip
    threshold = Decimal(str(found))
    if threshold == threshold.to_integral_value():
        threshold = threshold.quantize(Decimal(1))  # 500, not 500.0
    h = q.bandwidth if q.bandwidth is not None else threshold / 4
    observed = await effect_repo.observations(
        db,
        start=start,
        stop=stop,
        spend_days=policy.spend_window_days,
        low=threshold - h,
        high=threshold + h,
        scope=caller.scope,
    )
    points: dict[str, list[tuple[float, float]]] = {o: [] for o in OUTCOMES}
    for o in observed:
        x = float(o.running - threshold)
        points["spend"].append((x, float(o.spend_after)))
        points["churn"].append((x, 0.0 if o.bought_after else 1.0))
        if o.nps is not None:
            points["nps"].append((x, o.nps))
    outcomes = [OutcomeEffect(name, effect_rules.local_linear_rd(points[name], float(h))) for name in OUTCOMES]
    return TierEffectReport(q.tier, threshold, start, stop, q.window_days, h, outcomes, effect_rules.METHOD)


# ---------------------------------------------------------------- the benefit holdout, held against treated


@dataclass(frozen=True)
class BenefitHoldoutQuery:
    tier: str
    since: dt.datetime | None = None  # upgrades from (default: the first)
    until: dt.datetime | None = None  # to, exclusive (default: now)


@dataclass(frozen=True)
class HoldoutOutcome:
    outcome: str  # spend, churn, nps: as in the tier effect, over each customer's holdout window
    comparison: holdout_rules.GroupComparison


@dataclass(frozen=True)
class BenefitHoldoutReport:
    tier: str
    since: dt.datetime | None
    until: dt.datetime
    held: int
    treated: int
    held_complete: int  # of them, windows that are over
    treated_complete: int
    outcomes: list[HoldoutOutcome]
    method: str


async def benefit_holdout(db: Executor, caller: Caller, q: BenefitHoldoutQuery) -> BenefitHoldoutReport:
    """Customers upgraded to a tier into the benefit holdout: the held-out group against the treated one on their
    spend, churn and NPS after the upgrade (domain/holdout.py has the method)."""
    now = dt.datetime.now(dt.UTC)
    until = q.until or now
    errors = []
    if (q.since is not None and q.since.tzinfo is None) or until.tzinfo is None:
        errors.append(ValidationFailed("from and to need a time zone", field="from"))
    elif q.since is not None and not q.since < until:
        errors.append(ValidationFailed("to is after from", field="to"))
    if errors:
        raise Invalid(errors)
    policy = await tiering.load_policy(db)
    if policy is None or policy.tier(q.tier) is None:
        raise NotFound(f"the active policy has no tier '{q.tier}'", field="tier")
    observed = await holdout_repo.observations(
        db, tier=q.tier, since=q.since or EARLIEST, until=until, scope=caller.scope
    )
    groups: dict[bool, dict[str, list[float]]] = {g: {o: [] for o in OUTCOMES} for g in (True, False)}
    for o in observed:
        groups[o.held]["spend"].append(float(o.spend))
        groups[o.held]["churn"].append(0.0 if o.bought else 1.0)
        if o.nps is not None:
            groups[o.held]["nps"].append(o.nps)
    return BenefitHoldoutReport(
        tier=q.tier,
        since=q.since,
        until=until,
        held=sum(1 for o in observed if o.held),
        treated=sum(1 for o in observed if not o.held),
        held_complete=sum(1 for o in observed if o.held and o.complete),
        treated_complete=sum(1 for o in observed if not o.held and o.complete),
        outcomes=[
            HoldoutOutcome(name, holdout_rules.compare_groups(groups[False][name], groups[True][name]))
            for name in OUTCOMES
        ],
        method=holdout_rules.METHOD,
    )
