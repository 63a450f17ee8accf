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
    kind: QuestionKind  # type: ignore[valid-type]
    dimension: str
    prompt: str
    options: list[str] | None = None
    required: bool = True


@strawberry.input
class CreateSurveyInput:
    title: str
    channels: list[SurveyChannel]  # type: ignore[valid-type]
    questions: list[SurveyQuestionInput]
    description: str | None = None
    trigger: SurveyTrigger = SurveyTrigger.MANUAL  # type: ignore[valid-type,attr-defined]
    per_complaint: bool = False
    status: SurveyStatus = SurveyStatus.ACTIVE  # type: ignore[valid-type,attr-defined]


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
    channel: SurveyChannel  # type: ignore[valid-type]
    answers: list[AnswerInput]
    complaint_id: strawberry.ID | None = None
    external_id: str | None = None
