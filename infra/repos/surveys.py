"""Surveys, questions and responses. One response per customer per survey (per complaint for
post-resolution surveys); partner submits are idempotent on the external id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from domain.errors import Conflict, NotFound
from infra.pagination import SortKey, apply_keyset
from infra.repos.base import Executor, Page, Scope, first_n_per_parent, to_page
from infra.tables import customers, survey_answers, survey_questions, survey_responses, surveys

s, q, r, a = surveys, survey_questions, survey_responses, survey_answers
SORT = SortKey("CREATED_AT_DESC", s.c.created_at, s.c.id, descending=True)


async def page(db: Executor, *, statuses: Sequence[str] | None, first: int, after: str | None) -> Page:
    stmt = select(s)
    if statuses:
        stmt = stmt.where(s.c.status.in_(list(statuses)))
    return to_page((await db.execute(apply_keyset(stmt, SORT, first, after))).all(), first)


async def count(db: Executor, *, statuses: Sequence[str] | None) -> int:
    stmt = select(func.count()).select_from(s)
    if statuses:
        stmt = stmt.where(s.c.status.in_(list(statuses)))
    return int((await db.execute(stmt)).scalar_one())


async def by_ids(db: Executor, ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    return {row.id: dict(row._mapping) for row in (await db.execute(select(s).where(s.c.id.in_(list(ids))))).all()}


async def questions_for(db: Executor, survey_ids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    rows = (await db.execute(select(q).where(q.c.survey_id.in_(list(survey_ids))).order_by(q.c.position))).all()
    out: dict[UUID, list[dict[str, Any]]] = {sid: [] for sid in survey_ids}
    for row in rows:
        out[row.survey_id].append(dict(row._mapping))
    return out


async def questions_by_ids(db: Executor, ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    return {row.id: dict(row._mapping) for row in (await db.execute(select(q).where(q.c.id.in_(list(ids))))).all()}


async def create(db: Executor, values: dict[str, Any], questions: list[dict[str, Any]]) -> UUID:
    survey_id: UUID = (await db.execute(insert(s).values(**values).returning(s.c.id))).scalar_one()
    await db.execute(insert(q), [{**qv, "survey_id": survey_id, "position": n} for n, qv in enumerate(questions)])
    return survey_id


def _scoped_responses(stmt: Any, scope: Scope) -> Any:
    if scope.partner_id is not None:
        stmt = stmt.where(r.c.customer_id.in_(select(customers.c.id).where(customers.c.partner_id == scope.partner_id)))
    return stmt


async def responses_by_ids(db: Executor, ids: Sequence[UUID], scope: Scope) -> dict[UUID, dict[str, Any]]:
    rows = (await db.execute(_scoped_responses(select(r).where(r.c.id.in_(list(ids))), scope))).all()
    return {row.id: dict(row._mapping) for row in rows}


async def latest_responses_for_customers(db: Executor, customer_ids: list[UUID], *, first: int) -> dict[UUID, Page]:
    return await first_n_per_parent(
        db, select(r), r.c.customer_id, customer_ids, [r.c.submitted_at.desc(), r.c.id.desc()], first
    )


async def answers_for(
    db: Executor, response_ids: Sequence[UUID], *, with_text: bool
) -> dict[UUID, list[dict[str, Any]]]:
    cols = [a.c.id, a.c.response_id, a.c.question_id, a.c.score, a.c.choices]
    if with_text:
        cols.append(a.c.text)
    rows = (await db.execute(select(*cols).where(a.c.response_id.in_(list(response_ids))).order_by(a.c.id))).all()
    out: dict[UUID, list[dict[str, Any]]] = {rid: [] for rid in response_ids}
    for row in rows:
        out[row.response_id].append(dict(row._mapping))
    return out


async def find_response(
    db: Executor,
    *,
    partner_id: UUID | None,
    external_id: str | None,
    survey_id: UUID,
    customer_id: UUID,
    complaint_id: UUID | None,
) -> tuple[UUID | None, bool]:
    """(existing response id, whether it is the same submission by external id)."""
    if external_id is not None:
        same = (
            await db.execute(
                select(r.c.id).where(r.c.partner_id.is_not_distinct_from(partner_id), r.c.external_id == external_id)
            )
        ).scalar_one_or_none()
        if same is not None:
            return same, True
    other = (
        await db.execute(
            select(r.c.id).where(
                r.c.survey_id == survey_id,
                r.c.customer_id == customer_id,
                r.c.complaint_id.is_not_distinct_from(complaint_id),
            )
        )
    ).scalar_one_or_none()
    return other, False


async def insert_response(db: Executor, values: dict[str, Any], answers: list[dict[str, Any]]) -> UUID:
    tier = (await db.execute(select(customers.c.tier_code).where(customers.c.id == values["customer_id"]))).scalar_one()
    stmt = pg_insert(r).values(**values, tier_at_response=tier).on_conflict_do_nothing().returning(r.c.id)
    response_id = (await db.execute(stmt)).scalar_one_or_none()
    if response_id is None:
        raise Conflict("this customer has answered this survey already", field="surveyId")
    await db.execute(insert(a), [{**av, "response_id": response_id} for av in answers])
    return response_id


async def survey_with_questions(db: Executor, survey_id: UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    survey = (await db.execute(select(s).where(s.c.id == survey_id))).first()
    if survey is None:
        raise NotFound("no such survey", field="surveyId")
    return dict(survey._mapping), (await questions_for(db, [survey_id]))[survey_id]
