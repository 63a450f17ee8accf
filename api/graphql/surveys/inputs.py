"""GraphQL inputs of surveys: create a survey, submit a response."""

from __future__ import annotations

import strawberry

from api.graphql.core.enums import (
    QuestionKind,
    SurveyChannel,
    SurveyStatus,
    SurveyTrigger,
)


@strawberry.input
class SurveyQuestionInput:
    kind: QuestionKind
    dimension: str
    prompt: str
    options: list[str] | None = None
    required: bool = True


@strawberry.input
class CreateSurveyInput:
    title: str
    channels: list[SurveyChannel]
    questions: list[SurveyQuestionInput]
    description: str | None = None
    trigger: SurveyTrigger = SurveyTrigger.MANUAL
    per_complaint: bool = False
    status: SurveyStatus = SurveyStatus.ACTIVE


@strawberry.input
class AnswerInput:
    question_id: strawberry.ID
    score: int | None = None
    choices: list[str] | None = None
    text: str | None = None


@strawberry.input
class SubmitSurveyResponseInput:
    survey_id: strawberry.ID
    customer_id: strawberry.ID
    channel: SurveyChannel
    answers: list[AnswerInput]
    complaint_id: strawberry.ID | None = None
    external_id: str | None = None


@strawberry.input
class InviteToSurveyInput:
    survey_id: strawberry.ID
    customer_ids: list[strawberry.ID]
    channel: SurveyChannel | None = None
