"""GraphQL for the reports (complaint analytics, survey scores, fairness across tiers, churn): ``Query.reports``,
mixed into Query (api/graphql/schema.py). The SLA policies and the complaint taxonomy are the complaints
slice's, survey invitations the surveys slice's.

Access is the schema's like everywhere: ``Query.reports`` and each ``Reports.<report>`` are guarded
fields (analysts read them all, marketing the survey and churn ones); report rows are aggregates
with no free text and no customer in them. Thin resolvers: the use-cases are api/usecases/reports.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import SurveyChannel
from api.graphql.core.errors import coded, query_error
from api.graphql.core.ids import from_global_id
from api.graphql.reports.types import (
    ChurnReportType,
    ComplaintAnalyticsType,
    FairnessComparisonType,
    FairnessReportType,
    FairnessTierType,
    ReportPeriod,
    ScoreGroup,
    ScoreMetric,
    ScoreRowType,
    _f,
)
from api.usecases import reports as usecases
from domain.errors import DomainError


def _range(since: dt.datetime | None, until: dt.datetime | None) -> usecases.Period:
    try:
        return usecases.period(since, until)
    except DomainError as exc:
        raise query_error(exc) from None


FromArg = Annotated[dt.datetime | None, strawberry.argument(name="from", description="inclusive; none: unbounded")]
ToArg = Annotated[dt.datetime | None, strawberry.argument(name="to", description="exclusive; none: unbounded")]


async def fairness_report(info: Info[Context, None], period: usecases.Period) -> FairnessReportType:
    done = await usecases.fairness(context_of(info).db, context_of(info).caller, period)
    return FairnessReportType(
        since=period.since,
        until=period.until,
        lowest_tier=done.lowest_tier,
        highest_tier=done.highest_tier,
        tiers=[FairnessTierType.from_row(r) for r in done.tiers],
        comparisons=[
            FairnessComparisonType(
                measure=c.measure, lowest=c.lowest, highest=c.highest, ratio=c.ratio, difference=c.difference
            )
            for c in done.comparisons
        ],
    )


# ---------------------------------------------------------------- the reports root


@strawberry.type(name="Reports", description="Aggregates: each report has its own grant (Reports.<name>)")
class ReportsType:
    @strawberry.field(description="Complaints per 1 000 customers by tier x category, top root causes, reopen rates")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    def complaints(
        self,
        since: FromArg = None,
        until: ToArg = None,
        tier: Annotated[str | None, strawberry.argument(description="top root causes of this tier only")] = None,
        top_root_causes: int = 10,
    ) -> ComplaintAnalyticsType | None:
        p = _range(since, until)
        try:
            usecases.check_top_root_causes(top_root_causes)
        except DomainError as exc:
            raise query_error(exc) from None
        return ComplaintAnalyticsType(since=p.since, until=p.until, tier_filter=tier, top=top_root_causes)

    @strawberry.field(description="NPS, CSAT or CES with responses and response rate, grouped as asked")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def survey_scores(
        self,
        info: Info[Context, None],
        metric: ScoreMetric,
        group_by: list[ScoreGroup] | None = None,
        period: ReportPeriod = ReportPeriod.MONTH,
        since: FromArg = None,
        until: ToArg = None,
        survey_id: strawberry.ID | None = None,
    ) -> list[ScoreRowType] | None:
        p = _range(since, until)
        survey = None
        if survey_id is not None:
            try:
                survey = from_global_id(survey_id, "Survey", field="surveyId")[1]
            except DomainError as exc:
                raise coded(exc.message, "BAD_USER_INPUT") from None
        q = usecases.ScoreQuery(
            metric=metric.value,
            period=period.value,
            range=p,
            group_by=[g.value for g in group_by or []],
            survey_id=survey,
        )
        rows = await usecases.survey_scores(context_of(info).db, context_of(info).caller, q)
        return [
            ScoreRowType(
                survey_ref=r.get("SURVEY"),
                tier=r.get("TIER"),
                channel=SurveyChannel(r["CHANNEL"]) if r.get("CHANNEL") else None,
                dimension=r.get("DIMENSION"),
                period_start=r.get("PERIOD"),
                responses=r["responses"],
                answers=r["answers"],
                positive=r["positive"],
                negative=r["negative"],
                score=_f(r["score"]),
                invitations=r["invitations"],
                answered_invitations=r["answered"],
                response_rate=_f(r["response_rate"]),
            )
            for r in rows
        ]

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Per tier: median first-response and resolution times, SLA breach rate, survey coverage, "
        "NPS; with the ratio between the lowest and the highest tier"
    )
    async def fairness(
        self, info: Info[Context, None], since: FromArg = None, until: ToArg = None
    ) -> FairnessReportType | None:
        return await fairness_report(info, _range(since, until))

    @strawberry.field(description="Churn levels per tier and the signals behind them")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    def churn_risk(self) -> ChurnReportType | None:
        return ChurnReportType()


# ---------------------------------------------------------------- Query and Mutation


@strawberry.type
class ReportQuery:
    @strawberry.field(description="Aggregate reports (each needs its own grant)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    def reports(self) -> ReportsType | None:
        return ReportsType()
