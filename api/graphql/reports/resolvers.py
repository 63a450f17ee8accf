"""GraphQL for complaints' SLA policies and taxonomy, survey invitations and the reports (complaint
analytics, survey scores, fairness across tiers, churn): queries and mutations mixed into Query and
Mutation (api/graphql/schema.py).

Access is the schema's like everywhere: ``Query.reports`` and each ``Reports.<report>`` are guarded
fields (analysts read them all, marketing the survey and churn ones); report rows are aggregates
with no free text and no customer in them. Thin resolvers: the use-cases are api/usecases/reports.py
(the reports), complaints.py (SLA policies, taxonomies) and surveys.py (invitations).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.complaints.types import TaxonType
from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import SurveyChannel
from api.graphql.core.errors import coded, query_error
from api.graphql.core.ids import from_global_id, to_global_id
from api.graphql.core.resolving import enum_value, mutate
from api.graphql.reports.inputs import CreateSlaPolicyInput, InviteToSurveyInput
from api.graphql.reports.types import (
    ChurnReportType,
    ComplaintAnalyticsType,
    FairnessComparisonType,
    FairnessReportType,
    FairnessTierType,
    InvitationSkipType,
    InviteToSurveyPayload,
    ReportPeriod,
    ScoreGroup,
    ScoreMetric,
    ScoreRowType,
    SlaPolicyPayload,
    SlaPolicyType,
    SurveyInvitationType,
    TaxonPayload,
    _f,
)
from api.usecases import complaints as complaint_usecases
from api.usecases import reports as usecases
from api.usecases import surveys as survey_usecases
from domain import sla as sla_rules
from domain.errors import DomainError


def _range(since: dt.datetime | None, until: dt.datetime | None) -> usecases.Period:
    try:
        return usecases.period(since, until)
    except DomainError as exc:
        raise query_error(exc) from None


FromArg = Annotated[dt.datetime | None, strawberry.argument(name="from", description="inclusive; none: unbounded")]
ToArg = Annotated[dt.datetime | None, strawberry.argument(name="to", description="exclusive; none: unbounded")]


# ---------------------------------------------------------------- SLA policies


async def _policies(info: Info[Context, None], statuses: list[str] | None = None) -> list[SlaPolicyType]:
    found = await complaint_usecases.sla_policies(context_of(info).db, context_of(info).caller, statuses)
    return [SlaPolicyType.from_row(p.row, p.targets) for p in found]


async def _policy_by_id(info: Info[Context, None], policy_id: UUID) -> SlaPolicyType | None:
    found = [p for p in await _policies(info) if p.id == to_global_id("SlaPolicy", policy_id)]
    return found[0] if found else None


async def create_sla_policy(info: Info[Context, None], inp: CreateSlaPolicyInput) -> SlaPolicyPayload:
    ctx = context_of(info)
    targets = [
        sla_rules.SlaTarget(t.tier, enum_value(t.severity), t.first_response_minutes, t.resolution_minutes)
        for t in inp.targets
    ]
    cmd = complaint_usecases.CreateSlaPolicy(inp.name, targets)
    policy_id = await complaint_usecases.create_sla_policy(ctx.db, ctx.caller, cmd)
    return SlaPolicyPayload(sla_policy=await _policy_by_id(info, policy_id))


async def activate_sla_policy(info: Info[Context, None], global_id: str) -> SlaPolicyPayload:
    ctx = context_of(info)
    _, policy_id = from_global_id(global_id, "SlaPolicy", field="id")
    await complaint_usecases.activate_sla_policy(ctx.db, ctx.caller, policy_id)
    return SlaPolicyPayload(sla_policy=await _policy_by_id(info, policy_id))


# ---------------------------------------------------------------- taxonomy


async def _add_taxon(info: Info[Context, None], taxonomy: str, code: str, label: str) -> TaxonPayload:
    cmd = complaint_usecases.AddTaxon(taxonomy, code, label)
    return TaxonPayload(
        taxon=TaxonType(**await complaint_usecases.add_taxon(context_of(info).db, context_of(info).caller, cmd))
    )


async def _deactivate_taxon(info: Info[Context, None], taxonomy: str, code: str) -> TaxonPayload:
    taxon = await complaint_usecases.deactivate_taxon(context_of(info).db, context_of(info).caller, taxonomy, code)
    return TaxonPayload(taxon=TaxonType(**taxon))


# ---------------------------------------------------------------- survey invitations


def _cid(customer_id: UUID) -> strawberry.ID:
    return strawberry.ID(to_global_id("Customer", customer_id))


# ---------------------------------------------------------------- reports: fairness


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

    @strawberry.field(description="Every SLA policy, newest version first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def sla_policies(self, info: Info[Context, None]) -> list[SlaPolicyType] | None:
        return await _policies(info)

    @strawberry.field
    async def active_sla_policy(self, info: Info[Context, None]) -> SlaPolicyType | None:
        found = await _policies(info, ["active"])
        return found[0] if found else None


@strawberry.type
class ReportMutation:
    @strawberry.mutation(description="A draft SLA policy: targets by tier (or '*') and severity, validated")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def create_sla_policy(
        self, info: Info[Context, None], input: CreateSlaPolicyInput
    ) -> SlaPolicyPayload | None:
        return await mutate(SlaPolicyPayload, lambda: create_sla_policy(info, input))

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Activate a draft SLA policy (the active one retires); open complaints keep their deadlines"
    )
    async def activate_sla_policy(self, info: Info[Context, None], id: strawberry.ID) -> SlaPolicyPayload | None:
        return await mutate(SlaPolicyPayload, lambda: activate_sla_policy(info, id))

    @strawberry.mutation(description="Add a complaint category (or bring back a deactivated one)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def add_complaint_category(self, info: Info[Context, None], code: str, label: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _add_taxon(info, complaint_usecases.CATEGORIES, code, label))

    @strawberry.mutation(description="No new complaint can use it; complaints that do keep it")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def deactivate_complaint_category(self, info: Info[Context, None], code: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _deactivate_taxon(info, complaint_usecases.CATEGORIES, code))

    @strawberry.mutation(description="Add a root cause (or bring back a deactivated one)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def add_root_cause(self, info: Info[Context, None], code: str, label: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _add_taxon(info, complaint_usecases.ROOT_CAUSES, code, label))

    @strawberry.mutation(description="No new resolution can use it; complaints that do keep it")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def deactivate_root_cause(self, info: Info[Context, None], code: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _deactivate_taxon(info, complaint_usecases.ROOT_CAUSES, code))

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Invite customers to a survey now; the per-customer throttle and consent apply, "
        "skipped customers come back with the reason"
    )
    async def invite_to_survey(
        self, info: Info[Context, None], input: InviteToSurveyInput
    ) -> InviteToSurveyPayload | None:
        return await mutate(InviteToSurveyPayload, lambda: invite_to_survey(info, input))


async def invite_to_survey(info: Info[Context, None], inp: InviteToSurveyInput) -> InviteToSurveyPayload:
    ctx = context_of(info)
    _, survey_id = from_global_id(inp.survey_id, "Survey", field="surveyId")
    survey_usecases.check_invitees(len(inp.customer_ids))  # before the customer ids are read, as ever
    cmd = survey_usecases.InviteToSurvey(
        survey_id=survey_id,
        customer_ids=[
            from_global_id(c, "Customer", field=f"customerIds[{n}]")[1] for n, c in enumerate(inp.customer_ids)
        ],
        channel=enum_value(inp.channel) if inp.channel is not None else None,
    )
    done = await survey_usecases.invite_to_survey(ctx.db, ctx.caller, cmd, settings=ctx.settings)
    invited = [
        SurveyInvitationType.from_json(o.invitation, o.requested_channel, o.fallback)
        for o in done.outcomes
        if o.invitation is not None
    ]
    skipped = [InvitationSkipType(customer_id=_cid(c), reason="not_found") for c in done.not_found]
    skipped += [
        InvitationSkipType(customer_id=_cid(o.customer_id), reason=o.skipped or "throttled")
        for o in done.outcomes
        if o.invitation is None
    ]
    return InviteToSurveyPayload(invitations=invited, skipped=skipped)
