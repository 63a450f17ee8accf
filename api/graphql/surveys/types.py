"""GraphQL types of surveys: surveys, questions, responses and answers."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import QuestionKind, SurveyChannel, SurveyStatus, SurveyTrigger
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import ConnectionBase, Edge, Node, UserError, lazy
from api.graphql.customers.types import CustomerType, load_customer

if TYPE_CHECKING:
    from api.graphql.complaints.types import ComplaintType

_COMPLAINTS = "api.graphql.complaints.types"


@strawberry.type(name="SurveyQuestion")
class SurveyQuestionType(Node):
    position: int | None
    kind: QuestionKind | None
    dimension: str | None
    prompt: str | None
    options: list[str] | None
    required: bool | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SurveyQuestionType:
        return cls(
            id=strawberry.ID(to_global_id("SurveyQuestion", row["id"])),
            position=row["position"],
            kind=QuestionKind(row["kind"]),
            dimension=row["dimension"],
            prompt=row["prompt"],
            options=list(row["options"] or []),
            required=row["required"],
        )


@strawberry.type(name="Survey")
class SurveyType(Node):
    db_id: strawberry.Private[UUID]
    version: int
    title: str | None
    description: str | None
    status: SurveyStatus | None
    trigger: SurveyTrigger | None
    channels: list[SurveyChannel] | None
    per_complaint: bool | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SurveyType:
        return cls(
            id=strawberry.ID(to_global_id("Survey", row["id"])),
            db_id=row["id"],
            version=row["version"],
            title=row["title"],
            description=row["description"],
            status=SurveyStatus(row["status"]),
            trigger=SurveyTrigger(row["trigger"]),
            channels=[SurveyChannel(c) for c in row["channels"]],
            per_complaint=row["per_complaint"],
            created_at=row["created_at"],
        )

    @strawberry.field
    async def questions(self, info: Info[Context, None]) -> list[SurveyQuestionType] | None:
        return [
            SurveyQuestionType.from_row(r) for r in await context_of(info).loaders.survey_questions.load(self.db_id)
        ]


@strawberry.type(name="SurveyAnswer")
class SurveyAnswerType:
    customer_ref: strawberry.Private[UUID]
    question_ref: strawberry.Private[UUID]
    score: int | None
    choices: list[str] | None
    text: str | None

    @strawberry.field
    async def question(self, info: Info[Context, None]) -> SurveyQuestionType | None:
        row = await context_of(info).loaders.question.load(self.question_ref)
        return SurveyQuestionType.from_row(row) if row else None


@strawberry.type
class SurveyLinks:
    """The survey, customer and (post-resolution) complaint a response or an invitation belongs to,
    each read through the caller's scoped, guarded loaders."""

    survey_ref: strawberry.Private[UUID]
    customer_ref: strawberry.Private[UUID]
    complaint_ref: strawberry.Private[UUID | None]

    @strawberry.field
    async def survey(self, info: Info[Context, None]) -> SurveyType | None:
        row = await context_of(info).loaders.survey.load(self.survey_ref)
        return SurveyType.from_row(row) if row else None

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)

    @strawberry.field
    async def complaint(
        self, info: Info[Context, None]
    ) -> Annotated[ComplaintType, strawberry.lazy(_COMPLAINTS)] | None:
        if self.complaint_ref is None:
            return None
        row = await context_of(info).loaders.complaint.load(self.complaint_ref)
        return lazy(_COMPLAINTS, "ComplaintType").from_row(row) if row else None


@strawberry.type(name="SurveyResponse")
class SurveyResponseType(Node, SurveyLinks):
    db_id: strawberry.Private[UUID]
    external_id: str | None
    channel: SurveyChannel | None
    tier_at_response: str | None
    submitted_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SurveyResponseType:
        return cls(
            id=strawberry.ID(to_global_id("SurveyResponse", row["id"])),
            db_id=row["id"],
            customer_ref=row["customer_id"],
            survey_ref=row["survey_id"],
            complaint_ref=row["complaint_id"],
            external_id=row["external_id"],
            channel=SurveyChannel(row["channel"]),
            tier_at_response=row["tier_at_response"],
            submitted_at=row["submitted_at"],
        )

    @strawberry.field
    async def answers(self, info: Info[Context, None]) -> list[SurveyAnswerType] | None:
        return [
            SurveyAnswerType(
                customer_ref=self.customer_ref,
                question_ref=r["question_id"],
                score=r["score"],
                choices=list(r["choices"]) if r["choices"] is not None else None,
                text=r.get("text"),
            )
            for r in await context_of(info).loaders.answers.load(self.db_id)
        ]


@strawberry.type(name="SurveyConnection")
class SurveyConnection(ConnectionBase):
    edges: list[Edge[SurveyType]]


@strawberry.type(name="SurveyResponseConnection")
class SurveyResponseConnection(ConnectionBase):
    edges: list[Edge[SurveyResponseType]]


@strawberry.type
class SurveyPayload:
    survey: SurveyType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SurveyResponsePayload:
    response: SurveyResponseType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# ---------------------------------------------------------------- invitations


@strawberry.type(name="SurveyInvitation")
class SurveyInvitationType(SurveyLinks):
    id: strawberry.ID
    channel: SurveyChannel
    trigger: SurveyTrigger
    tier_at_invitation: str | None
    sent_at: dt.datetime
    requested_channel: SurveyChannel | None = strawberry.field(
        default=None, description="The channel asked for, if any; `channel` is the one used"
    )
    channel_reason: str | None = strawberry.field(
        default=None,
        description="Why the invitation went out on another channel than the one asked for (null when it "
        "did not): channel_not_offered, no_email_address, no_email_consent, no_phone_number, "
        "no_sms_consent or no_phone_consent",
    )

    @classmethod
    def from_json(
        cls, row: dict[str, Any], requested: str | None = None, reason: str | None = None
    ) -> SurveyInvitationType:
        return cls(
            requested_channel=SurveyChannel(requested) if requested else None,
            channel_reason=reason,
            id=strawberry.ID(str(row["id"])),
            survey_ref=UUID(row["survey_id"]),
            customer_ref=UUID(row["customer_id"]),
            complaint_ref=UUID(row["complaint_id"]) if row.get("complaint_id") else None,
            channel=SurveyChannel(row["channel"]),
            trigger=SurveyTrigger(row["trigger"]),
            tier_at_invitation=row.get("tier_at_invitation"),
            sent_at=dt.datetime.fromisoformat(row["sent_at"]),
        )


@strawberry.type(name="InvitationSkip", description="A customer not invited, and why")
class InvitationSkipType:
    customer_id: strawberry.ID
    reason: str = strawberry.field(
        description="not_found, survey_inactive, answered, already_invited, throttled (invited lately, on any "
        "channel) or no_channel (none of the survey's channels reaches the customer with consent)"
    )


@strawberry.type
class InviteToSurveyPayload:
    invitations: list[SurveyInvitationType] = strawberry.field(default_factory=list)
    skipped: list[InvitationSkipType] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)
