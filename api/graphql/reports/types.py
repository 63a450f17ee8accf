"""GraphQL types of reports: complaint analytics, scores, fairness, churn. A score row links to its survey by
name (the surveys slice's type, imported when first resolved), so the reports slice imports no other."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import SurveyChannel
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import lazy
from api.usecases import reports

if TYPE_CHECKING:
    from api.graphql.surveys.types import SurveyType

_SURVEYS = "api.graphql.surveys.types"


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


@strawberry.type(name="ComplaintRate")
class ComplaintRateType:
    tier: str
    category: str
    category_label: str
    complaints: int
    customers: int = strawberry.field(description="Live customers in the tier now")
    per_thousand: float | None = strawberry.field(description="Complaints per 1 000 customers of the tier")


@strawberry.type(name="RootCauseCount")
class RootCauseCountType:
    code: str
    label: str
    complaints: int
    share_percent: float


@strawberry.type(name="ReopenRate")
class ReopenRateType:
    tier: str | None = strawberry.field(description="Tier at opening; null on the overall row")
    overall: bool
    resolved: int = strawberry.field(description="Complaints resolved at least once")
    reopened: int = strawberry.field(description="… of which reopened at least once")
    reopens: int
    rate: float | None


@strawberry.type(name="ComplaintAnalytics")
class ComplaintAnalyticsType:
    since: strawberry.Private[dt.datetime | None]
    until: strawberry.Private[dt.datetime | None]
    tier_filter: strawberry.Private[str | None]
    top: strawberry.Private[int]

    @property
    def _period(self) -> reports.Period:
        return reports.Period(self.since, self.until)

    @strawberry.field(description="Tier at opening x category, zeros included")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def per_thousand_customers(self, info: Info[Context, None]) -> list[ComplaintRateType]:
        rows = await reports.complaint_rates(context_of(info).db, context_of(info).caller, self._period)
        return [
            ComplaintRateType(
                tier=r["tier"],
                category=r["category"],
                category_label=r["label"],
                complaints=r["complaints"],
                customers=r["customers"],
                per_thousand=_f(r["per_thousand"]),
            )
            for r in rows
        ]

    @strawberry.field
    async def top_root_causes(self, info: Info[Context, None]) -> list[RootCauseCountType]:
        rows = await reports.top_root_causes(
            context_of(info).db, context_of(info).caller, self._period, tier=self.tier_filter, top=self.top
        )
        return [
            RootCauseCountType(
                code=r["code"], label=r["label"], complaints=r["complaints"], share_percent=float(r["share"])
            )
            for r in rows
        ]

    @strawberry.field
    async def reopen_rates(self, info: Info[Context, None]) -> list[ReopenRateType]:
        rows = await reports.reopen_rates(context_of(info).db, context_of(info).caller, self._period)
        return [
            ReopenRateType(
                tier=r["tier"],
                overall=r["overall"],
                resolved=r["resolved"],
                reopened=r["reopened"],
                reopens=int(r["reopens"]),
                rate=_f(r["rate"]),
            )
            for r in rows
        ]


@strawberry.enum(description="NPS = % promoters (9-10) - % detractors (0-6); CSAT = % of 4-5; CES = % of 5-7")
class ScoreMetric(Enum):
    NPS = "nps"
    CSAT = "csat"
    CES = "ces"


@strawberry.enum
class ScoreGroup(Enum):
    SURVEY = "SURVEY"
    TIER = "TIER"
    CHANNEL = "CHANNEL"
    DIMENSION = "DIMENSION"
    PERIOD = "PERIOD"


@strawberry.enum
class ReportPeriod(Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@strawberry.type(name="ScoreRow", description="A score with its evidence: answers, responses, invitations")
class ScoreRowType:
    survey_ref: strawberry.Private[UUID | None]
    tier: str | None
    channel: SurveyChannel | None
    dimension: str | None
    period_start: dt.datetime | None
    responses: int
    answers: int = strawberry.field(description="Scored answers the score is computed over")
    positive: int = strawberry.field(description="Promoters (NPS) or satisfied answers (CSAT, CES)")
    negative: int = strawberry.field(description="Detractors (NPS only)")
    score: float | None
    invitations: int = strawberry.field(description="(survey, customer, complaint) invited; reminders not counted")
    answered_invitations: int
    response_rate: float | None = strawberry.field(description="answeredInvitations / invitations")

    @strawberry.field
    def survey_id(self) -> strawberry.ID | None:
        return strawberry.ID(to_global_id("Survey", self.survey_ref)) if self.survey_ref else None

    @strawberry.field
    async def survey(self, info: Info[Context, None]) -> Annotated[SurveyType, strawberry.lazy(_SURVEYS)] | None:
        if self.survey_ref is None:
            return None
        row = await context_of(info).loaders.survey.load(self.survey_ref)
        return lazy(_SURVEYS, "SurveyType").from_row(row) if row else None


@strawberry.type(name="FairnessTier")
class FairnessTierType:
    tier: str
    rank: int
    complaints: int = strawberry.field(description="Opened in the range under this tier")
    complaints_with_sla: int
    breached_complaints: int
    median_first_response_minutes: float | None
    median_resolution_minutes: float | None = strawberry.field(description="Time waiting on the customer excluded")
    sla_breach_rate: float | None
    customers: int = strawberry.field(description="Live customers in the tier now")
    customers_invited: int
    customers_answered: int
    invited_share: float | None
    answered_share: float | None
    nps_answers: int
    nps: float | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> FairnessTierType:
        """From a row of the fairness report (api/usecases/reports.py ``fairness``)."""
        return cls(
            tier=r["tier"],
            rank=r["rank"],
            complaints=r["complaints"],
            complaints_with_sla=r["with_sla"],
            breached_complaints=r["breached"],
            median_first_response_minutes=_f(r["median_first_response_minutes"]),
            median_resolution_minutes=_f(r["median_resolution_minutes"]),
            sla_breach_rate=_f(r["breach_rate"]),
            customers=r["customers"],
            customers_invited=r["invited"],
            customers_answered=r["answered"],
            invited_share=_f(r["invited_share"]),
            answered_share=_f(r["answered_share"]),
            nps_answers=r["nps_answers"],
            nps=_f(r["nps"]),
        )


@strawberry.type(name="FairnessComparison")
class FairnessComparisonType:
    measure: str
    lowest: float | None = strawberry.field(description="The value of the lowest tier")
    highest: float | None = strawberry.field(description="The value of the highest tier")
    ratio: float | None = strawberry.field(description="lowest / highest (null when undefined)")
    difference: float | None = strawberry.field(description="lowest - highest")


@strawberry.type(name="FairnessReport", description="Tiers side by side, so that neglect of lower tiers shows")
class FairnessReportType:
    since: dt.datetime | None = strawberry.field(name="from")
    until: dt.datetime | None = strawberry.field(name="to")
    lowest_tier: str | None
    highest_tier: str | None
    tiers: list[FairnessTierType]
    comparisons: list[FairnessComparisonType]


@strawberry.type(name="ChurnLevelCount")
class ChurnLevelCountType:
    tier: str | None
    level: str
    customers: int
    mean_score: float


@strawberry.type(name="ChurnSignalCount")
class ChurnSignalCountType:
    code: str
    customers: int


@strawberry.type(name="ChurnReport")
class ChurnReportType:
    @strawberry.field(description="Live customers per tier and churn level")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def levels(self, info: Info[Context, None]) -> list[ChurnLevelCountType]:
        rows = await reports.churn_levels(context_of(info).db, context_of(info).caller)
        return [
            ChurnLevelCountType(
                tier=r["tier"], level=r["level"], customers=r["customers"], mean_score=float(r["mean_score"])
            )
            for r in rows
        ]

    @strawberry.field(description="How many customers each signal fires for")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def signals(self, info: Info[Context, None]) -> list[ChurnSignalCountType]:
        rows = await reports.churn_signals(context_of(info).db, context_of(info).caller)
        return [ChurnSignalCountType(**r) for r in rows]
