"""Thin resolvers of surveys, their responses and invitations: read the arguments, call one repository read
or use-case, map the result."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import SurveyStatus
from api.graphql.core.ids import from_global_id, to_global_id
from api.graphql.core.resolving import enum_value, first_of, mutate, one, query
from api.graphql.surveys.inputs import CreateSurveyInput, InviteToSurveyInput, SubmitSurveyResponseInput
from api.graphql.surveys.types import (
    InvitationSkipType,
    InviteToSurveyPayload,
    SurveyConnection,
    SurveyInvitationType,
    SurveyPayload,
    SurveyResponsePayload,
    SurveyResponseType,
    SurveyType,
)
from api.usecases import surveys as usecases
from domain.errors import Forbidden, NotFound
from domain.surveys import Answer


def _uuid(global_id: str, type_name: str, field: str) -> UUID:
    return from_global_id(global_id, type_name, field=field)[1]


def _create_command(inp: CreateSurveyInput) -> usecases.CreateSurvey:
    return usecases.CreateSurvey(
        title=inp.title,
        channels=[c.value for c in inp.channels],
        questions=[
            usecases.NewQuestion(
                kind=q.kind.value, dimension=q.dimension, prompt=q.prompt, options=q.options, required=q.required
            )
            for q in inp.questions
        ],
        description=inp.description,
        trigger=enum_value(inp.trigger),
        per_complaint=inp.per_complaint,
        status=enum_value(inp.status),
    )


def _question_id(global_id: str, n: int) -> str:
    """An answer's question id; a malformed one stays an unknown question, reported as such with the others."""
    try:
        return str(_uuid(global_id, "SurveyQuestion", f"answers[{n}].questionId"))
    except NotFound:
        return f"invalid:{n}"


def _submit_command(inp: SubmitSurveyResponseInput) -> usecases.SubmitResponse:
    survey_id = _uuid(inp.survey_id, "Survey", "surveyId")
    customer_id = _uuid(inp.customer_id, "Customer", "customerId")
    complaint_id = _uuid(inp.complaint_id, "Complaint", "complaintId") if inp.complaint_id else None
    return usecases.SubmitResponse(
        survey_id=survey_id,
        customer_id=customer_id,
        complaint_id=complaint_id,
        channel=inp.channel.value,
        answers=[
            Answer(question_id=_question_id(a.question_id, n), score=a.score, choices=a.choices, text=a.text)
            for n, a in enumerate(inp.answers)
        ],
        external_id=inp.external_id,
    )


@strawberry.type
class SurveyQuery:
    @strawberry.field
    async def survey(self, info: Info[Context, None], id: strawberry.ID) -> SurveyType | None:
        return await one(id, "Survey", context_of(info).loaders.survey.load, SurveyType.from_row)

    @strawberry.field
    async def surveys(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: list[SurveyStatus] | None = None,
    ) -> SurveyConnection | None:
        n = first_of(info, first)
        statuses = [s.value for s in status] if status else None

        async def run() -> Any:
            db, caller = context_of(info).db, context_of(info).caller
            page = await usecases.survey_page(db, caller, statuses=statuses, first=n, after=after)
            return SurveyConnection.from_page(
                page,
                "CREATED_AT_DESC",
                "created_at",
                SurveyType.from_row,
                lambda: usecases.count_surveys(db, caller, statuses=statuses),
            )

        return await query(run)


@strawberry.type
class SurveyMutation:
    @strawberry.mutation
    async def create_survey(self, info: Info[Context, None], input: CreateSurveyInput) -> SurveyPayload | None:
        ctx = context_of(info)

        async def run() -> SurveyPayload:
            survey_id = await usecases.create_survey(ctx.db, ctx.caller, _create_command(input))
            row = await ctx.loaders.survey.load(survey_id)
            return SurveyPayload(survey=SurveyType.from_row(row) if row else None)

        return await mutate(SurveyPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="One response per customer and survey; idempotent on (partner, externalId): the same "
        "answers again return the stored response, other content under that id is a CONFLICT"
    )
    async def submit_survey_response(
        self, info: Info[Context, None], input: SubmitSurveyResponseInput
    ) -> SurveyResponsePayload | None:
        ctx = context_of(info)

        async def run() -> SurveyResponsePayload:
            response_id = await usecases.submit_survey_response(ctx.db, ctx.caller, _submit_command(input))
            row = await ctx.loaders.response.load(response_id)
            if row is None:
                raise Forbidden("not allowed to read this response")
            return SurveyResponsePayload(response=SurveyResponseType.from_row(row))

        return await mutate(SurveyResponsePayload, run)


# ---------------------------------------------------------------- invitations


def _cid(customer_id: UUID) -> strawberry.ID:
    return strawberry.ID(to_global_id("Customer", customer_id))


# ---------------------------------------------------------------- reports: fairness


@strawberry.type
class InvitationMutation:
    """Survey invitations (listed in Mutation after the SLA and taxonomy changes, as before)."""

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
    usecases.check_invitees(len(inp.customer_ids))  # before the customer ids are read, as ever
    cmd = usecases.InviteToSurvey(
        survey_id=survey_id,
        customer_ids=[
            from_global_id(c, "Customer", field=f"customerIds[{n}]")[1] for n, c in enumerate(inp.customer_ids)
        ],
        channel=enum_value(inp.channel) if inp.channel is not None else None,
    )
    done = await usecases.invite_to_survey(ctx.db, ctx.caller, cmd, settings=ctx.settings)
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
