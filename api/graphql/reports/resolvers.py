"""GraphQL for complaints' SLA policies and taxonomy, survey invitations and the reports (complaint
analytics, survey scores, fairness across tiers, churn): queries and mutations mixed into Query and
Mutation (api/graphql/schema.py).

Access is the schema's like everywhere: ``Query.reports`` and each ``Reports.<report>`` are guarded
fields (analysts read them all, marketing the survey and churn ones); report rows are aggregates
with no free text and no customer in them. All SQL is in infra/ (repos/reports.py, sla.py,
repos/complaints.py, repos/surveys.py).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.complaints.types import TaxonType
from api.graphql.core.context import Context
from api.graphql.core.enums import SurveyChannel
from api.graphql.core.errors import coded
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
from domain import sla as sla_rules
from domain.errors import DomainError, Invalid, ValidationFailed
from infra import sla as sla_repo
from infra.repos import authz as audit_repo
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import reports as reports_repo
from infra.repos import surveys as surveys_repo

CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_INVITES = 100


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


def _range(since: dt.datetime | None, until: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise coded(f"{name} needs a time zone", "BAD_USER_INPUT")
    if since is not None and until is not None and since >= until:
        raise coded("from must be before to", "BAD_USER_INPUT")
    return since, until


FromArg = Annotated[dt.datetime | None, strawberry.argument(name="from", description="inclusive; none: unbounded")]
ToArg = Annotated[dt.datetime | None, strawberry.argument(name="to", description="exclusive; none: unbounded")]


# ---------------------------------------------------------------- SLA policies


async def _policies(info: Info[Context, None], statuses: list[str] | None = None) -> list[SlaPolicyType]:
    db = _ctx(info).db
    rows = await sla_repo.policies(db, statuses)
    targets = await sla_repo.targets_of(db, [r["id"] for r in rows]) if rows else {}
    return [SlaPolicyType.from_row(r, targets[r["id"]]) for r in rows]


async def _policy_by_id(info: Info[Context, None], policy_id: UUID) -> SlaPolicyType | None:
    found = [p for p in await _policies(info) if p.id == to_global_id("SlaPolicy", policy_id)]
    return found[0] if found else None


async def create_sla_policy(info: Info[Context, None], inp: CreateSlaPolicyInput) -> SlaPolicyPayload:
    ctx = _ctx(info)
    name = " ".join(inp.name.split())
    targets = [
        sla_rules.SlaTarget(t.tier.strip(), enum_value(t.severity), t.first_response_minutes, t.resolution_minutes)
        for t in inp.targets
    ]
    async with ctx.db.unit_of_work() as uow:
        errors: list[ValidationFailed] = []
        if not 0 < len(name) <= 100:
            errors.append(ValidationFailed("a name has 1 to 100 characters", field="name"))
        try:
            sla_rules.validate_targets(targets, await sla_repo.active_tier_codes(uow))
        except Invalid as exc:
            errors += exc.errors
        if errors:
            raise Invalid(errors)
        policy_id = await sla_repo.create_policy(uow, name=name, targets=targets, actor=ctx.actor)
        await audit_repo.write_audit(
            uow,
            actor=ctx.actor,
            action="sla_policy.create",
            request_id=ctx.request_id,
            target_type="sla_policy",
            target_ids=[str(policy_id)],
            after={"name": name, "targets": len(targets)},
        )
        uow.commit()
    return SlaPolicyPayload(sla_policy=await _policy_by_id(info, policy_id))


async def activate_sla_policy(info: Info[Context, None], global_id: str) -> SlaPolicyPayload:
    ctx = _ctx(info)
    _, policy_id = from_global_id(global_id, "SlaPolicy", field="id")
    async with ctx.db.unit_of_work() as uow:
        # Coverage is checked against the tiers of now, under the activation lock.
        version, retired = await sla_repo.activate_policy(uow, policy_id, actor=ctx.actor)
        targets = (await sla_repo.targets_of(uow, [policy_id]))[policy_id]
        sla_rules.validate_targets(targets, await sla_repo.active_tier_codes(uow))
        await audit_repo.write_audit(
            uow,
            actor=ctx.actor,
            action="sla_policy.activate",
            request_id=ctx.request_id,
            target_type="sla_policy",
            target_ids=[str(policy_id)],
            after={"version": version, "retiredVersion": retired},
        )
        uow.commit()
    return SlaPolicyPayload(sla_policy=await _policy_by_id(info, policy_id))


# ---------------------------------------------------------------- taxonomy


async def _add_taxon(info: Info[Context, None], table: str, code: str, label: str) -> TaxonPayload:
    ctx = _ctx(info)
    code, label = code.strip().lower(), " ".join(label.split())
    errors = []
    if not CODE.match(code):
        errors.append(ValidationFailed("a code is 2 to 40 of a-z, 0-9 and _, starting with a letter", field="code"))
    if not 0 < len(label) <= 100:
        errors.append(ValidationFailed("a label has 1 to 100 characters", field="label"))
    if errors:
        raise Invalid(errors)
    async with ctx.db.unit_of_work() as uow:
        taxon, reactivated = await complaints_repo.add_taxon(uow, table, code, label)
        await audit_repo.write_audit(
            uow,
            actor=ctx.actor,
            action=f"taxonomy.{'reactivate' if reactivated else 'add'}",
            request_id=ctx.request_id,
            target_type=table,
            target_ids=[code],
            after={"label": label},
        )
        uow.commit()
    return TaxonPayload(taxon=TaxonType(**taxon))


async def _deactivate_taxon(info: Info[Context, None], table: str, code: str) -> TaxonPayload:
    ctx = _ctx(info)
    async with ctx.db.unit_of_work() as uow:
        taxon = await complaints_repo.deactivate_taxon(uow, table, code.strip().lower())
        await audit_repo.write_audit(
            uow,
            actor=ctx.actor,
            action="taxonomy.deactivate",
            request_id=ctx.request_id,
            target_type=table,
            target_ids=[taxon["code"]],
        )
        uow.commit()
    return TaxonPayload(taxon=TaxonType(**taxon))


# ---------------------------------------------------------------- survey invitations


def _cid(customer_id: UUID) -> strawberry.ID:
    return strawberry.ID(to_global_id("Customer", customer_id))


# ---------------------------------------------------------------- reports: fairness


FAIRNESS_MEASURES = (
    "medianFirstResponseMinutes",
    "medianResolutionMinutes",
    "slaBreachRate",
    "invitedShare",
    "answeredShare",
    "nps",
)


def _compare(measure: str, low: float | None, high: float | None) -> FairnessComparisonType:
    ratio = diff = None
    if low is not None and high is not None:
        diff = round(low - high, 4)
        ratio = round(low / high, 4) if high != 0 else None
    return FairnessComparisonType(measure=measure, lowest=low, highest=high, ratio=ratio, difference=diff)


async def fairness_report(
    info: Info[Context, None], since: dt.datetime | None, until: dt.datetime | None
) -> FairnessReportType:
    rows = await reports_repo.fairness(_ctx(info).db, since=since, until=until, scope=_ctx(info).scope)
    tiers = [
        FairnessTierType(
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
        for r in rows
    ]
    comparisons = []
    if tiers:
        low, high = tiers[0], tiers[-1]
        attrs = {
            "medianFirstResponseMinutes": "median_first_response_minutes",
            "medianResolutionMinutes": "median_resolution_minutes",
            "slaBreachRate": "sla_breach_rate",
            "invitedShare": "invited_share",
            "answeredShare": "answered_share",
            "nps": "nps",
        }
        comparisons = [_compare(m, getattr(low, attrs[m]), getattr(high, attrs[m])) for m in FAIRNESS_MEASURES]
    return FairnessReportType(
        since=since,
        until=until,
        lowest_tier=tiers[0].tier if tiers else None,
        highest_tier=tiers[-1].tier if tiers else None,
        tiers=tiers,
        comparisons=comparisons,
    )


# ---------------------------------------------------------------- the reports root


@strawberry.type(name="Reports", description="Aggregates: each report has its own grant (Reports.<name>)")
class ReportsType:
    @strawberry.field(description="Complaints per 1 000 customers by tier x category, top root causes, reopen rates")
    def complaints(
        self,
        since: FromArg = None,
        until: ToArg = None,
        tier: Annotated[str | None, strawberry.argument(description="top root causes of this tier only")] = None,
        top_root_causes: int = 10,
    ) -> ComplaintAnalyticsType | None:
        since, until = _range(since, until)
        if not 1 <= top_root_causes <= 50:
            raise coded("topRootCauses must be between 1 and 50", "BAD_USER_INPUT")
        return ComplaintAnalyticsType(since=since, until=until, tier_filter=tier, top=top_root_causes)

    @strawberry.field(description="NPS, CSAT or CES with responses and response rate, grouped as asked")
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
        since, until = _range(since, until)
        survey = None
        if survey_id is not None:
            try:
                survey = from_global_id(survey_id, "Survey", field="surveyId")[1]
            except DomainError as exc:
                raise coded(exc.message, "BAD_USER_INPUT") from None
        groups = [g.value for g in group_by or []]
        rows = await reports_repo.survey_scores(
            _ctx(info).db,
            kind=metric.value,
            group_by=groups,
            period=period.value,
            since=since,
            until=until,
            survey_id=survey,
            scope=_ctx(info).scope,
        )
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

    @strawberry.field(
        description="Per tier: median first-response and resolution times, SLA breach rate, survey coverage, "
        "NPS; with the ratio between the lowest and the highest tier"
    )
    async def fairness(
        self, info: Info[Context, None], since: FromArg = None, until: ToArg = None
    ) -> FairnessReportType | None:
        since, until = _range(since, until)
        return await fairness_report(info, since, until)

    @strawberry.field(description="Churn levels per tier and the signals behind them")
    def churn_risk(self) -> ChurnReportType | None:
        return ChurnReportType()


# ---------------------------------------------------------------- Query and Mutation


@strawberry.type
class ReportQuery:
    @strawberry.field(description="Aggregate reports (each needs its own grant)")
    def reports(self) -> ReportsType | None:
        return ReportsType()

    @strawberry.field(description="Every SLA policy, newest version first")
    async def sla_policies(self, info: Info[Context, None]) -> list[SlaPolicyType] | None:
        return await _policies(info)

    @strawberry.field
    async def active_sla_policy(self, info: Info[Context, None]) -> SlaPolicyType | None:
        found = await _policies(info, ["active"])
        return found[0] if found else None


@strawberry.type
class ReportMutation:
    @strawberry.mutation(description="A draft SLA policy: targets by tier (or '*') and severity, validated")
    async def create_sla_policy(
        self, info: Info[Context, None], input: CreateSlaPolicyInput
    ) -> SlaPolicyPayload | None:
        return await mutate(SlaPolicyPayload, lambda: create_sla_policy(info, input))

    @strawberry.mutation(
        description="Activate a draft SLA policy (the active one retires); open complaints keep their deadlines"
    )
    async def activate_sla_policy(self, info: Info[Context, None], id: strawberry.ID) -> SlaPolicyPayload | None:
        return await mutate(SlaPolicyPayload, lambda: activate_sla_policy(info, id))

    @strawberry.mutation(description="Add a complaint category (or bring back a deactivated one)")
    async def add_complaint_category(self, info: Info[Context, None], code: str, label: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _add_taxon(info, "categories", code, label))

    @strawberry.mutation(description="No new complaint can use it; complaints that do keep it")
    async def deactivate_complaint_category(self, info: Info[Context, None], code: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _deactivate_taxon(info, "categories", code))

    @strawberry.mutation(description="Add a root cause (or bring back a deactivated one)")
    async def add_root_cause(self, info: Info[Context, None], code: str, label: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _add_taxon(info, "root_causes", code, label))

    @strawberry.mutation(description="No new resolution can use it; complaints that do keep it")
    async def deactivate_root_cause(self, info: Info[Context, None], code: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _deactivate_taxon(info, "root_causes", code))

    @strawberry.mutation(
        description="Invite customers to a survey now; the per-customer throttle and consent apply, "
        "skipped customers come back with the reason"
    )
    async def invite_to_survey(
        self, info: Info[Context, None], input: InviteToSurveyInput
    ) -> InviteToSurveyPayload | None:
        return await mutate(InviteToSurveyPayload, lambda: invite_to_survey(info, input))


async def invite_to_survey(info: Info[Context, None], inp: InviteToSurveyInput) -> InviteToSurveyPayload:
    ctx = _ctx(info)
    _, survey_id = from_global_id(inp.survey_id, "Survey", field="surveyId")
    if not 0 < len(inp.customer_ids) <= MAX_INVITES:
        raise ValidationFailed(f"invite 1 to {MAX_INVITES} customers at once", field="customerIds")
    customers = [from_global_id(c, "Customer", field=f"customerIds[{n}]")[1] for n, c in enumerate(inp.customer_ids)]
    channel = enum_value(inp.channel) if inp.channel is not None else None
    async with ctx.db.unit_of_work() as uow:
        survey, _ = await surveys_repo.survey_with_questions(uow, survey_id)
        if channel is not None and channel not in survey["channels"]:
            raise ValidationFailed("the survey is not sent on this channel", field="channel")
        # Row scope first: a customer the caller cannot see answers exactly like an unknown one.
        visible = await customers_repo.by_ids(uow, customers, columns=(), scope=ctx.scope)
        outcomes = await surveys_repo.invite(
            uow,
            [
                surveys_repo.Candidate(survey_id, c, "manual", preferred_channel=channel)
                for c in customers
                if c in visible
            ],
            throttle_days=ctx.settings.survey_throttle_days,
            periodic_days=ctx.settings.survey_periodic_days,
        )
        uow.commit()
    invited = [
        SurveyInvitationType.from_json(o.invitation, o.requested_channel, o.fallback)
        for o in outcomes
        if o.invitation is not None
    ]
    skipped = [
        InvitationSkipType(customer_id=_cid(c), reason="not_found")
        for c in dict.fromkeys(customers)
        if c not in visible
    ]
    skipped += [
        InvitationSkipType(customer_id=_cid(o.customer_id), reason=o.skipped or "throttled")
        for o in outcomes
        if o.invitation is None
    ]
    return InviteToSurveyPayload(invitations=invited, skipped=skipped)
