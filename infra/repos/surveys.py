"""Surveys, questions and responses. One response per customer per survey (per complaint for
post-resolution surveys); partner submits are idempotent on the external id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from domain.errors import NotFound
from domain.surveys import COMPLAINT_CHANNEL_TO_SURVEY, INVITE_CHANNEL_ORDER
from infra import crypto
from infra.pagination import SortKey, apply_keyset
from infra.repos import scope as readable
from infra.repos.base import Executor, Page, Scope, first_n_per_parent, next_ids, to_page
from infra.tables import complaints, customers, survey_answers, survey_questions, survey_responses, surveys

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
    return stmt.where(readable.by_customer(scope, r.c.customer_id))


async def responses_by_ids(db: Executor, ids: Sequence[UUID], scope: Scope) -> dict[UUID, dict[str, Any]]:
    rows = (await db.execute(_scoped_responses(select(r).where(r.c.id.in_(list(ids))), scope))).all()
    return {row.id: dict(row._mapping) for row in rows}


async def latest_responses_for_customers(db: Executor, customer_ids: list[UUID], *, first: int) -> dict[UUID, Page]:
    return await first_n_per_parent(
        db,
        "surveys.latest_responses_for_customers",
        lambda: (select(r), r.c.customer_id, [r.c.submitted_at.desc(), r.c.id.desc()]),
        customer_ids,
        first,
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


async def response_by_external_id(db: Executor, external_id: str, scope: Scope) -> dict[str, Any] | None:
    """The partner's response with this external id: its id, what it answers and its answers
    (``question_id``, ``score``, ``choices``, ``text``, in question order)."""
    found = (
        await db.execute(
            select(r.c.id, r.c.survey_id, r.c.customer_id, r.c.complaint_id, r.c.channel).where(
                readable.owned(scope, r.c.partner_id), r.c.external_id == external_id
            )
        )
    ).first()
    if found is None:
        return None
    answers = (
        await db.execute(
            select(a.c.question_id, a.c.score, a.c.choices, a.c.text)
            .where(a.c.response_id == found.id)
            .order_by(a.c.question_id)
        )
    ).all()
    return {**found._mapping, "answers": [dict(x._mapping) for x in answers]}


async def answered(db: Executor, *, survey_id: UUID, customer_id: UUID, complaint_id: UUID | None) -> bool:
    """Whether the customer has answered the survey (that complaint's, for per-complaint surveys)."""
    stmt = select(r.c.id).where(
        r.c.survey_id == survey_id,
        r.c.customer_id == customer_id,
        r.c.complaint_id.is_not_distinct_from(complaint_id),
    )
    return (await db.execute(stmt)).first() is not None


async def insert_response(db: Executor, values: dict[str, Any], answers: list[dict[str, Any]]) -> UUID | None:
    """Insert a response and its answers; None when the slot is taken (the customer answered the survey,
    or the partner's external id is used), by a committed response or by one another transaction was
    inserting meanwhile (the insert waits for it to end): nothing is written then."""
    tier = (await db.execute(select(customers.c.tier_code).where(customers.c.id == values["customer_id"]))).scalar_one()
    stmt = pg_insert(r).values(**values, tier_at_response=tier).on_conflict_do_nothing().returning(r.c.id)
    response_id: UUID | None = (await db.execute(stmt)).scalar_one_or_none()
    if response_id is None:
        return None
    rows = [{**av, "response_id": response_id} for av in answers]
    if any(row.get("text") is not None for row in rows):  # free text is encrypted bound to its answer's id
        for row, answer_id in zip(rows, await next_ids(db, a, len(rows)), strict=True):
            row["id"], row["text"] = answer_id, crypto.for_row(answer_id, row.get("text"))
    await db.execute(insert(a), rows)
    return response_id


async def survey_with_questions(db: Executor, survey_id: UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    survey = (await db.execute(select(s).where(s.c.id == survey_id))).first()
    if survey is None:
        raise NotFound("no such survey", field="surveyId")
    return dict(survey._mapping), (await questions_for(db, [survey_id]))[survey_id]


# ---------------------------------------------------------------- invitations
#
# One statement decides, for a list of candidates (survey, customer, complaint, purchase, trigger),
# who is invited and on which channel, and why the others are not (domain/surveys.SKIP_REASONS):
# the survey must be active; a customer who answered it (that complaint's, for per-complaint surveys)
# is not asked again; a trigger fires once (per complaint, per purchase, per periodic interval); no
# customer is invited more often than the throttle allows, across surveys and channels, and at most
# once per call; the channel is domain/surveys.pick_channel's. Customers are locked first, so
# concurrent triggers for one customer queue up and the throttle holds.


@dataclass(frozen=True)
class Candidate:
    survey_id: UUID
    customer_id: UUID
    trigger: str
    complaint_id: UUID | None = None
    purchase_id: UUID | None = None
    preferred_channel: str | None = None
    priority: int = 0  # lower first, when one customer has several candidates


@dataclass(frozen=True)
class InviteOutcome:
    survey_id: UUID
    customer_id: UUID
    complaint_id: UUID | None
    skipped: str | None  # a SKIP_REASONS code, or None when invited
    invitation: dict[str, Any] | None
    requested_channel: str | None = None  # the channel asked for (the preferred one), if any
    fallback: str | None = None  # invited on another channel: why (a CHANNEL_FALLBACK_REASONS code)


_LOCK_CUSTOMERS = text("SELECT id FROM customers WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE").bindparams(
    bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True)))
)

_INVITE_SQL = text("""
WITH cand AS (
    SELECT * FROM unnest(CAST(:survey_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:complaint_ids AS uuid[]),
                         CAST(:purchase_ids AS uuid[]), CAST(:triggers AS text[]), CAST(:preferred AS text[]),
                         CAST(:priorities AS integer[])) WITH ORDINALITY
         AS x(survey_id, customer_id, complaint_id, purchase_id, trigger, preferred, priority, n)
),
judged AS (
    SELECT x.*, c.tier_code, ch.channel,
           CASE
               WHEN c.id IS NULL THEN 'not_found'
               WHEN s.id IS NULL OR s.status <> 'active' THEN 'survey_inactive'
               WHEN EXISTS (
                   SELECT 1 FROM survey_responses r
                   WHERE r.survey_id = x.survey_id AND r.customer_id = x.customer_id
                     AND (NOT s.per_complaint OR r.complaint_id IS NOT DISTINCT FROM x.complaint_id)
               ) THEN 'answered'
               WHEN EXISTS (
                   SELECT 1 FROM survey_invitations i
                   WHERE i.survey_id = x.survey_id AND i.customer_id = x.customer_id
                     AND CASE x.trigger
                             WHEN 'complaint_resolved' THEN i.complaint_id IS NOT DISTINCT FROM x.complaint_id
                             WHEN 'purchase' THEN i.purchase_id = x.purchase_id
                             WHEN 'periodic' THEN i.sent_at > now() - make_interval(days => :periodic_days)
                             ELSE false
                         END
               ) THEN 'already_invited'
               WHEN EXISTS (
                   SELECT 1 FROM survey_invitations i
                   WHERE i.customer_id = x.customer_id AND i.sent_at > now() - make_interval(days => :throttle_days)
               ) THEN 'throttled'
               WHEN ch.channel IS NULL THEN 'no_channel'
           END AS skip,
           -- why not the channel asked for (domain/surveys.CHANNEL_FALLBACK_REASONS), null if it is used
           CASE
               WHEN x.preferred IS NULL OR ch.channel IS NULL OR ch.channel = x.preferred THEN NULL
               WHEN NOT x.preferred = ANY(s.channels) THEN 'channel_not_offered'
               WHEN x.preferred = 'email' AND c.email IS NULL THEN 'no_email_address'
               WHEN x.preferred = 'email' THEN 'no_email_consent'
               WHEN x.preferred IN ('sms', 'phone') AND c.phone IS NULL THEN 'no_phone_number'
               WHEN x.preferred = 'sms' THEN 'no_sms_consent'
               WHEN x.preferred = 'phone' THEN 'no_phone_consent'
           END AS fallback
    FROM cand x
    LEFT JOIN surveys s ON s.id = x.survey_id
    LEFT JOIN customers c ON c.id = x.customer_id AND c.deleted_at IS NULL AND c.merged_into_id IS NULL
    LEFT JOIN LATERAL (
        SELECT o.ch AS channel
        FROM unnest(CAST(:channel_order AS text[])) WITH ORDINALITY AS o(ch, rank)
        WHERE o.ch = ANY(s.channels)
          AND (o.ch IN ('web', 'in_app')
               OR (o.ch = 'email' AND c.email IS NOT NULL AND c.consent_email_at IS NOT NULL)
               OR (o.ch = 'sms' AND c.phone IS NOT NULL AND c.consent_sms_at IS NOT NULL)
               OR (o.ch = 'phone' AND c.phone IS NOT NULL AND c.consent_phone_at IS NOT NULL))
        ORDER BY (o.ch = x.preferred) DESC NULLS LAST, o.rank
        LIMIT 1
    ) ch ON true
),
ranked AS (
    SELECT j.*, row_number() OVER (PARTITION BY j.customer_id ORDER BY (j.skip IS NULL) DESC, j.priority, j.n) AS rn
    FROM judged j
),
sent AS (
    INSERT INTO survey_invitations
        (survey_id, customer_id, complaint_id, purchase_id, channel, trigger, tier_at_invitation)
    SELECT survey_id, customer_id, complaint_id, purchase_id, channel, trigger, tier_code
    FROM ranked WHERE skip IS NULL AND rn = 1
    RETURNING id, survey_id, customer_id, complaint_id, purchase_id, channel, trigger, tier_at_invitation, sent_at
)
SELECT r.n, r.survey_id, r.customer_id, r.complaint_id,
       CASE WHEN r.skip IS NULL AND r.rn > 1 THEN 'throttled' ELSE r.skip END AS skip,
       to_jsonb(i) AS invitation, r.preferred, r.fallback
FROM ranked r
LEFT JOIN sent i ON r.skip IS NULL AND r.rn = 1 AND i.customer_id = r.customer_id
ORDER BY r.n
""")


async def invite(
    conn: Executor, candidates: Sequence[Candidate], *, throttle_days: int, periodic_days: int
) -> list[InviteOutcome]:
    """Invite the candidates that may be (see above); one outcome per candidate, in order."""
    if not candidates:
        return []
    await conn.execute(_LOCK_CUSTOMERS, {"ids": sorted({c.customer_id for c in candidates}, key=str)})
    rows = (
        await conn.execute(
            _INVITE_SQL,
            {
                "survey_ids": [c.survey_id for c in candidates],
                "customer_ids": [c.customer_id for c in candidates],
                "complaint_ids": [c.complaint_id for c in candidates],
                "purchase_ids": [c.purchase_id for c in candidates],
                "triggers": [c.trigger for c in candidates],
                "preferred": [c.preferred_channel for c in candidates],
                "priorities": [c.priority for c in candidates],
                "channel_order": list(INVITE_CHANNEL_ORDER),
                "throttle_days": throttle_days,
                "periodic_days": periodic_days,
            },
        )
    ).all()
    return [
        InviteOutcome(
            r.survey_id,
            r.customer_id,
            r.complaint_id,
            r.skip,
            r.invitation,
            r.preferred,
            r.fallback if r.invitation is not None else None,
        )
        for r in rows
    ]


async def invite_after_resolution(
    conn: Executor, *, complaint_id: UUID, throttle_days: int, periodic_days: int
) -> InviteOutcome | None:
    """The post-resolution survey of a complaint just resolved: the newest active survey triggered by
    resolutions, on the channel the complaint came in on where possible."""
    complaint = (
        await conn.execute(
            select(complaints.c.customer_id, complaints.c.channel).where(complaints.c.id == complaint_id)
        )
    ).one()
    survey_ids = (
        (
            await conn.execute(
                select(s.c.id)
                .where(s.c.status == "active", s.c.trigger == "complaint_resolved")
                .order_by(s.c.created_at.desc(), s.c.id)
            )
        )
        .scalars()
        .all()
    )
    preferred = COMPLAINT_CHANNEL_TO_SURVEY.get(complaint.channel)
    outcomes = await invite(
        conn,
        [
            Candidate(
                sid,
                complaint.customer_id,
                "complaint_resolved",
                complaint_id=complaint_id,
                preferred_channel=preferred,
                priority=n,
            )
            for n, sid in enumerate(survey_ids)
        ],
        throttle_days=throttle_days,
        periodic_days=periodic_days,
    )
    return next((o for o in outcomes if o.skipped is None), outcomes[0] if outcomes else None)


_PURCHASE_CANDIDATES = text("""
SELECT DISTINCT ON (s.id, p.customer_id) s.id AS survey_id, p.customer_id, p.id AS purchase_id
FROM purchases p
JOIN surveys s ON s.status = 'active' AND s.trigger = 'purchase'
JOIN customers c ON c.id = p.customer_id AND c.deleted_at IS NULL AND c.merged_into_id IS NULL
WHERE p.purchased_at <= now() - make_interval(hours => :delay_hours)
  AND p.purchased_at > now() - make_interval(hours => :delay_hours) - make_interval(days => :lookback_days)
  AND NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE i.survey_id = s.id AND i.purchase_id = p.id)
  AND NOT EXISTS (SELECT 1 FROM survey_responses r WHERE r.survey_id = s.id AND r.customer_id = p.customer_id)
  AND NOT EXISTS (SELECT 1 FROM survey_invitations i
                  WHERE i.customer_id = p.customer_id AND i.sent_at > now() - make_interval(days => :throttle_days))
ORDER BY s.id, p.customer_id, p.purchased_at DESC, p.id
LIMIT :batch
""")

_PERIODIC_CANDIDATES = text("""
SELECT s.id AS survey_id, c.id AS customer_id
FROM surveys s
JOIN customers c ON c.deleted_at IS NULL AND c.merged_into_id IS NULL
JOIN customer_metrics m ON m.customer_id = c.id AND m.last_purchase_at > now() - interval '365 days'
WHERE s.status = 'active' AND s.trigger = 'periodic'
  AND NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE i.survey_id = s.id AND i.customer_id = c.id
                  AND i.sent_at > now() - make_interval(days => :periodic_days))
  AND NOT EXISTS (SELECT 1 FROM survey_responses r WHERE r.survey_id = s.id AND r.customer_id = c.id)
  AND NOT EXISTS (SELECT 1 FROM survey_invitations i
                  WHERE i.customer_id = c.id AND i.sent_at > now() - make_interval(days => :throttle_days))
ORDER BY (SELECT max(i.sent_at) FROM survey_invitations i WHERE i.survey_id = s.id AND i.customer_id = c.id)
         NULLS FIRST, c.id
LIMIT :batch
""")


async def triggered_candidates(
    conn: Executor, *, delay_hours: int, throttle_days: int, periodic_days: int, batch: int, lookback_days: int = 7
) -> list[Candidate]:
    """Who is due for a purchase-triggered or a periodic survey now (purchase ones first), set-based."""
    params = {
        "delay_hours": delay_hours,
        "lookback_days": lookback_days,
        "throttle_days": throttle_days,
        "periodic_days": periodic_days,
        "batch": batch,
    }
    out = [
        Candidate(r.survey_id, r.customer_id, "purchase", purchase_id=r.purchase_id, priority=0)
        for r in (await conn.execute(_PURCHASE_CANDIDATES, params)).all()
    ]
    out += [
        Candidate(r.survey_id, r.customer_id, "periodic", priority=1)
        for r in (await conn.execute(_PERIODIC_CANDIDATES, params)).all()
    ]
    return out
