"""Use-cases of surveys: the page of surveys, create a survey, submit a response, invite customers.

Free of GraphQL (issue 13, item 2): each takes the request's database, the caller (api/usecases/caller.py:
who, for audit rows, and the rows they reach) and a plain command, returns ids or rows, and raises domain
errors; the resolvers in ``api/graphql/surveys/resolvers.py`` map arguments in and results out. The CLI, jobs
and tests call them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from domain.errors import Invalid, NotFound, ValidationFailed
from domain.idempotency import check_replay
from domain.surveys import Answer, Question, validate_answers
from infra.after_change import after_change
from infra.db import RequestDb
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import surveys as surveys_repo
from infra.repos.base import Page, Scope
from infra.settings import Settings

# ---------------------------------------------------------------- reads


async def survey_page(
    db: RequestDb, caller: Caller, *, statuses: Sequence[str] | None, first: int, after: str | None
) -> Page:
    """One page of surveys, newest first (surveys are not partner data: no row scope)."""
    return await surveys_repo.page(db, statuses=statuses, first=first, after=after)


async def count_surveys(db: RequestDb, caller: Caller, *, statuses: Sequence[str] | None) -> int:
    return await surveys_repo.count(db, statuses=statuses)


# ---------------------------------------------------------------- create


@dataclass(frozen=True)
class NewQuestion:
    kind: str  # a domain.enums question kind: "nps", "csat", "single_choice", …
    dimension: str
    prompt: str
    options: Sequence[str] | None = None
    required: bool = True


@dataclass(frozen=True)
class CreateSurvey:
    title: str
    channels: Sequence[str]
    questions: Sequence[NewQuestion]
    description: str | None = None
    trigger: str = "manual"
    per_complaint: bool = False
    status: str = "active"


async def create_survey(db: RequestDb, caller: Caller, cmd: CreateSurvey) -> UUID:
    """Create a survey and its questions; ``Invalid`` lists every problem and nothing is written."""
    errors = []
    if not cmd.title.strip():
        errors.append(ValidationFailed("a title is required", field="title"))
    if not cmd.channels:
        errors.append(ValidationFailed("at least one channel", field="channels"))
    if not cmd.questions:
        errors.append(ValidationFailed("at least one question", field="questions"))
    questions = []
    for n, q in enumerate(cmd.questions):
        options = [o.strip() for o in (q.options or []) if o.strip()]
        if q.kind in ("single_choice", "multiple_choice") and len(options) < 2:
            errors.append(ValidationFailed("a choice question needs two or more options", field=f"questions[{n}]"))
        if not q.prompt.strip() or not q.dimension.strip():
            errors.append(ValidationFailed("prompt and dimension are required", field=f"questions[{n}]"))
        questions.append(
            {
                "kind": q.kind,
                "dimension": q.dimension.strip().lower(),
                "prompt": q.prompt.strip(),
                "options": options,
                "required": q.required,
            }
        )
    if errors:
        raise Invalid(errors)
    async with db.unit_of_work() as uow:
        survey_id = await surveys_repo.create(
            uow,
            {
                "title": cmd.title.strip(),
                "description": cmd.description,
                "status": cmd.status,
                "trigger": cmd.trigger,
                "channels": sorted(set(cmd.channels)),
                "per_complaint": cmd.per_complaint,
            },
            questions,
        )
        uow.commit()
    return survey_id


# ---------------------------------------------------------------- submit a response


@dataclass(frozen=True)
class SubmitResponse:
    survey_id: UUID
    customer_id: UUID
    channel: str
    answers: Sequence[Answer]  # question ids as strings (a malformed one as "invalid:<n>": no such question)
    complaint_id: UUID | None = None
    external_id: str | None = None


def _answer_content(question_id: Any, score: int | None, choices: Any, text: str | None) -> tuple[Any, ...]:
    return (str(question_id), score, tuple(choices) if choices is not None else None, text)


def _by_question(answer: tuple[Any, ...]) -> str:
    return str(answer[0])


async def _replayed_response(uow: Any, scope: Scope, external_id: str | None, requested: dict[str, Any]) -> UUID | None:
    """The response already submitted with this external id (None: none is), if ``requested`` is what
    it was submitted with; a CONFLICT if not (domain/idempotency.py)."""
    if external_id is None:
        return None
    stored = await surveys_repo.response_by_external_id(uow, external_id, scope)
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


async def submit_survey_response(db: RequestDb, caller: Caller, cmd: SubmitResponse) -> UUID:
    """Record a customer's answers to a survey (one response per customer, survey and complaint; idempotent
    on the partner and ``external_id``); the customer's facts change, so the after-change step runs in the
    same transaction. Returns the response's id."""
    answers = cmd.answers
    requested = {
        "surveyId": cmd.survey_id,
        "customerId": cmd.customer_id,
        "complaintId": cmd.complaint_id,
        "channel": cmd.channel,
        "answers": sorted(
            (_answer_content(a.question_id, a.score, a.choices, a.text) for a in answers), key=_by_question
        ),
    }
    scope = caller.scope
    customer_id, complaint_id = cmd.customer_id, cmd.complaint_id
    async with db.unit_of_work() as uow:
        survey, questions = await surveys_repo.survey_with_questions(uow, cmd.survey_id)
        existing = await _replayed_response(uow, scope, cmd.external_id, requested)
        if existing is None:
            # Scope first: another partner's customer or complaint answers exactly like an unknown one.
            if not await customers_repo.exists(uow, customer_id, scope):
                raise NotFound("no such customer", field="customerId")
            if complaint_id is not None:
                found = await complaints_repo.by_ids(uow, [complaint_id], columns=(), scope=scope)
                if complaint_id not in found or found[complaint_id]["customer_id"] != customer_id:
                    raise NotFound("no such complaint of this customer", field="complaintId")
            slot = {"survey_id": cmd.survey_id, "customer_id": customer_id, "complaint_id": complaint_id}
            if await surveys_repo.answered(
                uow, survey_id=cmd.survey_id, customer_id=customer_id, complaint_id=complaint_id
            ):
                raise Invalid([ValidationFailed("this customer has answered this survey already", field="surveyId")])
            if survey["status"] != "active":
                raise ValidationFailed("the survey is not active", field="surveyId")
            if cmd.channel not in survey["channels"]:
                raise ValidationFailed("the survey is not sent on this channel", field="channel")
            if survey["per_complaint"] and complaint_id is None:
                raise ValidationFailed("this survey is answered per complaint: give complaintId", field="complaintId")
            validate_answers(
                [Question(str(q["id"]), q["kind"], q["options"], q["required"]) for q in questions], answers
            )
            existing = await surveys_repo.insert_response(
                uow,
                {**slot, "partner_id": scope.partner_id, "external_id": cmd.external_id, "channel": cmd.channel},
                [
                    {"question_id": UUID(a.question_id), "score": a.score, "choices": a.choices, "text": a.text}
                    for a in answers
                ],
            )
            if existing is None:  # another request took the slot meanwhile (its insert waited for it)
                existing = await _replayed_response(uow, scope, cmd.external_id, requested)
                if existing is None:  # not by this external id: the customer has answered
                    raise Invalid(
                        [ValidationFailed("this customer has answered this survey already", field="surveyId")]
                    )
            else:
                await after_change(uow.conn, [customer_id], actor=caller.actor)
                uow.commit()
    return existing


# ---------------------------------------------------------------- invitations

MAX_INVITES = 100


@dataclass(frozen=True)
class InviteToSurvey:
    survey_id: UUID
    customer_ids: Sequence[UUID]
    channel: str | None = None  # the channel asked for (one the survey is sent on); None: the customer's own


@dataclass(frozen=True)
class Invitations:
    outcomes: list[surveys_repo.InviteOutcome]  # one per customer the caller's scope reaches, in order
    not_found: list[UUID]  # the customers it does not reach (or that do not exist), each once, in order


def check_invitees(count: int) -> None:
    if not 0 < count <= MAX_INVITES:
        raise ValidationFailed(f"invite 1 to {MAX_INVITES} customers at once", field="customerIds")


async def invite_to_survey(db: RequestDb, caller: Caller, cmd: InviteToSurvey, *, settings: Settings) -> Invitations:
    """Invite customers to a survey now: the per-customer throttle and consent apply (an outcome says why a
    customer was skipped); a customer outside the caller's scope answers exactly like an unknown one."""
    check_invitees(len(cmd.customer_ids))
    customers = list(cmd.customer_ids)
    async with db.unit_of_work() as uow:
        survey, _ = await surveys_repo.survey_with_questions(uow, cmd.survey_id)
        if cmd.channel is not None and cmd.channel not in survey["channels"]:
            raise ValidationFailed("the survey is not sent on this channel", field="channel")
        # Row scope first: a customer the caller cannot see answers exactly like an unknown one.
        visible = await customers_repo.by_ids(uow, customers, columns=(), scope=caller.scope)
        outcomes = await surveys_repo.invite(
            uow,
            [
                surveys_repo.Candidate(cmd.survey_id, c, "manual", preferred_channel=cmd.channel)
                for c in customers
                if c in visible
            ],
            throttle_days=settings.survey_throttle_days,
            periodic_days=settings.survey_periodic_days,
        )
        uow.commit()
    return Invitations(outcomes=outcomes, not_found=[c for c in dict.fromkeys(customers) if c not in visible])
