"""Use-cases of the reports: complaint analytics, survey scores, fairness across tiers, churn.

Free of GraphQL (issue 13, item 2): each takes the request's database, the caller (api/usecases/caller.py:
its row scope confines every aggregate to a partner's customers) and the report's parameters, returns rows
or dataclasses, and raises domain errors; the resolvers in ``api/graphql/reports/`` map arguments in and
rows out. Report rows are aggregates with no free text and no customer in them; all SQL is in
infra/repos/reports.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from domain.errors import ValidationFailed
from infra.db import RequestDb
from infra.repos import reports as reports_repo

MAX_TOP_ROOT_CAUSES = 50


@dataclass(frozen=True)
class Period:
    """A time range: ``since`` inclusive, ``until`` exclusive; None: unbounded."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None


def period(since: dt.datetime | None, until: dt.datetime | None) -> Period:
    """The range, or ``ValidationFailed`` if a bound has no time zone or ``since`` is not before ``until``."""
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{name} needs a time zone", field=name)
    if since is not None and until is not None and since >= until:
        raise ValidationFailed("from must be before to", field="from")
    return Period(since, until)


# ---------------------------------------------------------------- complaints


def check_top_root_causes(top: int) -> None:
    if not 1 <= top <= MAX_TOP_ROOT_CAUSES:
        raise ValidationFailed(f"topRootCauses must be between 1 and {MAX_TOP_ROOT_CAUSES}", field="topRootCauses")


async def complaint_rates(db: RequestDb, caller: Caller, p: Period) -> list[dict[str, Any]]:
    """Tier at opening x category, zeros included: complaints and complaints per 1 000 customers."""
    return await reports_repo.complaint_rates(db, since=p.since, until=p.until, scope=caller.scope)


async def top_root_causes(
    db: RequestDb, caller: Caller, p: Period, *, tier: str | None, top: int
) -> list[dict[str, Any]]:
    """The ``top`` most frequent root causes of the complaints opened in the range (of one tier, if given)."""
    check_top_root_causes(top)
    return await reports_repo.top_root_causes(
        db, since=p.since, until=p.until, tier=tier, limit=top, scope=caller.scope
    )


async def reopen_rates(db: RequestDb, caller: Caller, p: Period) -> list[dict[str, Any]]:
    """Per tier at opening, and overall: resolved, reopened, rate."""
    return await reports_repo.reopen_rates(db, since=p.since, until=p.until, scope=caller.scope)


# ---------------------------------------------------------------- survey scores


@dataclass(frozen=True)
class ScoreQuery:
    metric: str  # "nps", "csat" or "ces"
    period: str  # the bucket of the PERIOD group: "day", "week", "month", …
    range: Period
    group_by: Sequence[str] = ()  # "SURVEY", "TIER", "CHANNEL", "DIMENSION", "PERIOD"
    survey_id: UUID | None = None


async def survey_scores(db: RequestDb, caller: Caller, q: ScoreQuery) -> list[dict[str, Any]]:
    """One row per group: responses, scored answers, positive/negative counts, the score, invitations and
    the response rate (rows keyed by the group names)."""
    return await reports_repo.survey_scores(
        db,
        kind=q.metric,
        group_by=list(q.group_by),
        period=q.period,
        since=q.range.since,
        until=q.range.until,
        survey_id=q.survey_id,
        scope=caller.scope,
    )


# ---------------------------------------------------------------- fairness


# The measures compared between the lowest and the highest tier: (report name, row key).
FAIRNESS_MEASURES = (
    ("medianFirstResponseMinutes", "median_first_response_minutes"),
    ("medianResolutionMinutes", "median_resolution_minutes"),
    ("slaBreachRate", "breach_rate"),
    ("invitedShare", "invited_share"),
    ("answeredShare", "answered_share"),
    ("nps", "nps"),
)


@dataclass(frozen=True)
class Comparison:
    measure: str
    lowest: float | None
    highest: float | None
    ratio: float | None  # lowest / highest (None when either is missing, or highest is 0)
    difference: float | None  # lowest - highest


@dataclass(frozen=True)
class FairnessReport:
    period: Period
    tiers: list[dict[str, Any]]  # one row per tier of the active policy, lowest rank first
    comparisons: list[Comparison]  # empty without tiers

    @property
    def lowest_tier(self) -> str | None:
        return self.tiers[0]["tier"] if self.tiers else None

    @property
    def highest_tier(self) -> str | None:
        return self.tiers[-1]["tier"] if self.tiers else None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def compare(measure: str, low: float | None, high: float | None) -> Comparison:
    """The lowest tier's value against the highest's: difference, and ratio when it is defined."""
    ratio = diff = None
    if low is not None and high is not None:
        diff = round(low - high, 4)
        ratio = round(low / high, 4) if high != 0 else None
    return Comparison(measure=measure, lowest=low, highest=high, ratio=ratio, difference=diff)


async def fairness(db: RequestDb, caller: Caller, p: Period) -> FairnessReport:
    """Per tier: median first-response and resolution times, SLA breach rate, survey coverage, NPS; and
    each measure compared between the lowest and the highest tier."""
    rows = await reports_repo.fairness(db, since=p.since, until=p.until, scope=caller.scope)
    comparisons = []
    if rows:
        low, high = rows[0], rows[-1]
        comparisons = [compare(m, _number(low[k]), _number(high[k])) for m, k in FAIRNESS_MEASURES]
    return FairnessReport(period=p, tiers=rows, comparisons=comparisons)


# ---------------------------------------------------------------- churn


async def churn_levels(db: RequestDb, caller: Caller) -> list[dict[str, Any]]:
    """Live customers per tier and churn level, with the mean score."""
    return await reports_repo.churn_levels(db, scope=caller.scope)


async def churn_signals(db: RequestDb, caller: Caller) -> list[dict[str, Any]]:
    """How many customers each churn signal fires for."""
    return await reports_repo.churn_signals(db, scope=caller.scope)
