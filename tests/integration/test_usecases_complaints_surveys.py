"""The complaints and surveys use-cases called directly, as the CLI, jobs or a console would: a database, a
caller (api/usecases/caller.py: actor, principal, row scope), a plain command — no HTTP, no GraphQL (issue 13, item 2). Each checks the result
and its effect in the database, including the after-change step run in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from api.usecases import complaints, surveys
from api.usecases.caller import Caller
from authz.principal import Principal, PrincipalKind
from domain.complaints import Transition
from domain.errors import Conflict, Invalid, NotFound, ValidationFailed
from domain.surveys import Answer
from infra.db import RequestDb
from infra.repos.base import Scope
from tests.api.helpers import create_customer, raw_id, scalar, snapshot
from tests.conftest import Api, test_settings

_STAFF = Principal(PrincipalKind.USER, "usecase-test", roles=("admin",))
STAFF = Caller(actor=_STAFF.subject, principal=_STAFF)


@pytest.fixture
async def db(api: Api) -> AsyncIterator[RequestDb]:
    request_db = RequestDb(api.services.engine.connect)
    yield request_db
    await request_db.close()


async def _customer(api: Api) -> UUID:
    admin = await api.user("usecase-setup", "admin")
    return raw_id((await create_customer(api, admin, name="Direct Caller"))["id"])


async def _row(api: Api, sql: str, **params: Any) -> tuple[Any, ...]:
    async with api.services.engine.connect() as conn:
        return tuple((await conn.execute(text(sql), params)).one())


async def _open_complaints(api: Api, customer_id: UUID) -> Any:
    return await scalar(api, "SELECT open_complaints FROM customer_metrics WHERE customer_id = :id", id=customer_id)


async def test_open_and_resolve_a_complaint_without_graphql(api: Api, db: RequestDb) -> None:
    customer_id = await _customer(api)
    cmd = complaints.OpenComplaint(
        customer_id=customer_id,
        subject="  Parcel   late ",
        description=" It has not arrived. ",
        category="delivery",
        severity="high",
        external_id="direct-1",
    )
    complaint_id = await complaints.open_complaint(db, STAFF, cmd)

    row = await _row(
        api, "SELECT subject, status, severity, customer_id, version FROM complaints WHERE id = :id", id=complaint_id
    )
    assert row == ("Parcel late", "new", "high", customer_id, 1)
    assert await _open_complaints(api, customer_id) == 1  # the after-change step ran, committed with it
    events = await _row(
        api, "SELECT count(*), min(actor) FROM complaint_events WHERE complaint_id = :id", id=complaint_id
    )
    assert events == (1, "user:usecase-test")  # the principal is the actor

    # the same command again is a replay: the same complaint, nothing new written
    before = await snapshot(api)
    assert await complaints.open_complaint(db, STAFF, cmd) == complaint_id
    assert await snapshot(api) == before
    # other content under that external id is a conflict
    with pytest.raises(ValidationFailed) as reused:
        await complaints.open_complaint(db, STAFF, complaints.OpenComplaint(**{**cmd.__dict__, "category": "billing"}))
    assert (reused.value.code, reused.value.field) == ("CONFLICT", "externalId")
    assert await snapshot(api) == before

    resolve = Transition(to="resolved", assignee="bob", resolution_code="refund", root_cause_code="process")
    moved = await complaints.transition_complaint(
        db, STAFF, complaints.TransitionComplaint(complaint_id, 1, resolve), settings=test_settings()
    )
    assert moved == complaint_id
    status = await _row(api, "SELECT status, version FROM complaints WHERE id = :id", id=complaint_id)
    assert status == ("resolved", 2)
    assert await _open_complaints(api, customer_id) == 0  # no longer counted as open
    # a stale version is refused, and nothing moves
    with pytest.raises(Conflict):
        await complaints.transition_complaint(
            db, STAFF, complaints.TransitionComplaint(complaint_id, 1, Transition(to="open")), settings=test_settings()
        )
    assert await scalar(api, "SELECT status FROM complaints WHERE id = :id", id=complaint_id) == "resolved"


async def test_bad_commands_and_other_partners_rows_write_nothing(api: Api, db: RequestDb) -> None:
    customer_id = await _customer(api)  # an unowned (staff) customer
    _, partner_id = await api.partner_token("Elsewhere Ltd")
    token = Principal(PrincipalKind.TOKEN, "elsewhere", partner_id=partner_id)
    partner = Caller(actor=token.subject, principal=token, scope=Scope(partner_id=partner_id))
    before = await snapshot(api)

    with pytest.raises(Invalid) as bad:
        await complaints.open_complaint(db, STAFF, complaints.OpenComplaint(customer_id, " ", "", "delivery"))
    assert [e.field for e in bad.value.errors] == ["subject", "description"]
    with pytest.raises(NotFound):  # outside the partner's scope: like an unknown customer
        await complaints.open_complaint(db, partner, complaints.OpenComplaint(customer_id, "s", "d", "delivery"))
    with pytest.raises(Invalid):
        await surveys.create_survey(db, STAFF, surveys.CreateSurvey(title=" ", channels=[], questions=[]))
    assert await snapshot(api) == before


async def test_create_a_survey_and_submit_a_response_without_graphql(api: Api, db: RequestDb) -> None:
    customer_id = await _customer(api)
    survey_id = await surveys.create_survey(
        db,
        STAFF,
        surveys.CreateSurvey(
            title=" After delivery ",
            channels=["web", "email", "web"],
            questions=[surveys.NewQuestion(kind="nps", dimension=" Loyalty ", prompt="Recommend us?")],
        ),
    )
    survey = await _row(api, "SELECT title, status, channels FROM surveys WHERE id = :id", id=survey_id)
    assert survey == ("After delivery", "active", ["email", "web"])
    question_id = await scalar(
        api, "SELECT id FROM survey_questions WHERE survey_id = :id AND dimension = 'loyalty'", id=survey_id
    )

    cmd = surveys.SubmitResponse(
        survey_id=survey_id,
        customer_id=customer_id,
        channel="web",
        answers=[Answer(question_id=str(question_id), score=3)],
        external_id="direct-r1",
    )
    response_id = await surveys.submit_survey_response(db, STAFF, cmd)
    stored = await _row(
        api,
        "SELECT r.customer_id, r.channel, a.score FROM survey_responses r "
        "JOIN survey_answers a ON a.response_id = r.id WHERE r.id = :id",
        id=response_id,
    )
    assert stored == (customer_id, "web", 3)
    assert await scalar(api, "SELECT latest_nps FROM customer_metrics WHERE customer_id = :id", id=customer_id) == 3

    before = await snapshot(api)
    assert await surveys.submit_survey_response(db, STAFF, cmd) == response_id  # a replay
    with pytest.raises(Invalid):  # answered already (without the external id: not a replay)
        await surveys.submit_survey_response(db, STAFF, surveys.SubmitResponse(**{**cmd.__dict__, "external_id": None}))
    other = await _customer(api)
    before = await snapshot(api)
    with pytest.raises(ValidationFailed):  # a channel the survey is not sent on
        await surveys.submit_survey_response(
            db,
            STAFF,
            surveys.SubmitResponse(**{**cmd.__dict__, "customer_id": other, "channel": "sms", "external_id": None}),
        )
    assert await snapshot(api) == before
