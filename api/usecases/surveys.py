"""Use-cases of surveys: create a survey, submit a response (see api/usecases/customers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from strawberry.types import Info

from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import enum_value
from api.graphql.surveys.types import SurveyResponseType, SurveyType
from domain.errors import Forbidden, Invalid, NotFound, ValidationFailed
from domain.idempotency import check_replay
from domain.surveys import Answer, Question, validate_answers
from infra.after_change import after_change
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import surveys as surveys_repo

if TYPE_CHECKING:
    from api.graphql.core.context import Context
    from api.graphql.surveys.inputs import CreateSurveyInput, SubmitSurveyResponseInput


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


def _uuid(global_id: str, type_name: str, field: str) -> UUID:
    return from_global_id(global_id, type_name, field=field)[1]


async def create_survey(info: Info[Context, None], inp: CreateSurveyInput) -> Any:
    from api.graphql.surveys.types import SurveyPayload

    ctx = _ctx(info)
    errors = []
    if not inp.title.strip():
        errors.append(ValidationFailed("a title is required", field="title"))
    if not inp.channels:
        errors.append(ValidationFailed("at least one channel", field="channels"))
    if not inp.questions:
        errors.append(ValidationFailed("at least one question", field="questions"))
    questions = []
    for n, q in enumerate(inp.questions):
        options = [o.strip() for o in (q.options or []) if o.strip()]
        if q.kind.value in ("single_choice", "multiple_choice") and len(options) < 2:
            errors.append(ValidationFailed("a choice question needs two or more options", field=f"questions[{n}]"))
        if not q.prompt.strip() or not q.dimension.strip():
            errors.append(ValidationFailed("prompt and dimension are required", field=f"questions[{n}]"))
        questions.append(
            {
                "kind": q.kind.value,
                "dimension": q.dimension.strip().lower(),
                "prompt": q.prompt.strip(),
                "options": options,
                "required": q.required,
            }
        )
    if errors:
        raise Invalid(errors)
    async with ctx.db.unit_of_work() as uow:
        survey_id = await surveys_repo.create(
            uow,
            {
                "title": inp.title.strip(),
                "description": inp.description,
                "status": enum_value(inp.status),
                "trigger": enum_value(inp.trigger),
                "channels": sorted({c.value for c in inp.channels}),
                "per_complaint": inp.per_complaint,
            },
            questions,
        )
        uow.commit()
    row = await ctx.loaders.survey.load(survey_id)
    return SurveyPayload(survey=SurveyType.from_row(row) if row else None)


def _answer_content(question_id: Any, score: int | None, choices: Any, text: str | None) -> tuple[Any, ...]:
    return (str(question_id), score, tuple(choices) if choices is not None else None, text)


def _by_question(answer: tuple[Any, ...]) -> str:
    return str(answer[0])


async def _replayed_response(
    uow: Any, partner_id: UUID | None, external_id: str | None, requested: dict[str, Any]
) -> UUID | None:
    """The response already submitted with this external id (None: none is), if ``requested`` is what
    it was submitted with; a CONFLICT if not (domain/idempotency.py)."""
    if external_id is None:
        return None
    stored = await surveys_repo.response_by_external_id(uow, partner_id, external_id)
    if stored is None:
        return None
    check_replay(
        "externalId",
        {
            "surveyId": stored["survey_id"],
            "customerId": stored["customer_id"],
            "complaintId": stored["complaint_id"],
            "channel": stored["channel"],
            "answers": sorted(
                (_answer_content(x["question_id"], x["score"], x["choices"], x["text"]) for x in stored["answers"]),
                key=_by_question,
            ),
        },
        requested,
    )
    response_id: UUID = stored["id"]
    return response_id


async def submit_survey_response(info: Info[Context, None], inp: SubmitSurveyResponseInput) -> Any:
    from api.graphql.surveys.types import SurveyResponsePayload

    ctx = _ctx(info)
    survey_id = _uuid(inp.survey_id, "Survey", "surveyId")
    customer_id = _uuid(inp.customer_id, "Customer", "customerId")
    complaint_id = _uuid(inp.complaint_id, "Complaint", "complaintId") if inp.complaint_id else None
    answers = []
    for n, a in enumerate(inp.answers):
        try:
            qid = str(_uuid(a.question_id, "SurveyQuestion", f"answers[{n}].questionId"))
        except NotFound:
            qid = f"invalid:{n}"
        answers.append(Answer(question_id=qid, score=a.score, choices=a.choices, text=a.text))
    requested = {
        "surveyId": survey_id,
        "customerId": customer_id,
        "complaintId": complaint_id,
        "channel": inp.channel.value,
        "answers": sorted(
            (_answer_content(a.question_id, a.score, a.choices, a.text) for a in answers), key=_by_question
        ),
    }
    partner_id = ctx.principal.partner_id
    async with ctx.db.unit_of_work() as uow:
        survey, questions = await surveys_repo.survey_with_questions(uow, survey_id)
        existing = await _replayed_response(uow, partner_id, inp.external_id, requested)
        if existing is None:
            # Scope first: another partner's customer or complaint answers exactly like an unknown one.
            if not await customers_repo.exists(uow, customer_id, ctx.scope):
                raise NotFound("no such customer", field="customerId")
            if complaint_id is not None:
                found = await complaints_repo.by_ids(uow, [complaint_id], columns=(), scope=ctx.scope)
                if complaint_id not in found or found[complaint_id]["customer_id"] != customer_id:
                    raise NotFound("no such complaint of this customer", field="complaintId")
            slot = {"survey_id": survey_id, "customer_id": customer_id, "complaint_id": complaint_id}
            if await surveys_repo.answered(uow, **slot):
                raise Invalid([ValidationFailed("this customer has answered this survey already", field="surveyId")])
            if survey["status"] != "active":
                raise ValidationFailed("the survey is not active", field="surveyId")
            if inp.channel.value not in survey["channels"]:
                raise ValidationFailed("the survey is not sent on this channel", field="channel")
            if survey["per_complaint"] and complaint_id is None:
                raise ValidationFailed("this survey is answered per complaint: give complaintId", field="complaintId")
            validate_answers(
                [Question(str(q["id"]), q["kind"], q["options"], q["required"]) for q in questions], answers
            )
            existing = await surveys_repo.insert_response(
                uow,
                {**slot, "partner_id": partner_id, "external_id": inp.external_id, "channel": inp.channel.value},
                [
                    {"question_id": UUID(a.question_id), "score": a.score, "choices": a.choices, "text": a.text}
                    for a in answers
                ],
            )
            if existing is None:  # another request took the slot meanwhile (its insert waited for it)
                existing = await _replayed_response(uow, partner_id, inp.external_id, requested)
                if existing is None:  # not by this external id: the customer has answered
                    raise Invalid(
                        [ValidationFailed("this customer has answered this survey already", field="surveyId")]
                    )
            else:
                await after_change(uow.conn, [customer_id], actor=ctx.actor)
                uow.commit()
    row = await ctx.loaders.response.load(existing)
    if row is None:
        raise Forbidden("not allowed to read this response")
    return SurveyResponsePayload(response=SurveyResponseType.from_row(row))
