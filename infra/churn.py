"""Churn scores: the inputs of domain/churn.py computed set-based in SQL, the scores stored in
``churn_scores``.

``refresh`` re-scores some customers in the caller's transaction (after a complaint or a survey answer
of theirs, or a breach of one of their complaints). Purchase ingest instead *defers* the re-score
(``defer_refresh``): a procrastinate job per batch, inserted in the ingest's own transaction (so it is
committed, or rolled back, with the purchases and never lost), taken by a worker right after the commit;
a batch of 500 purchases no longer waits for the scoring of its customers. ``recompute_all`` and the nightly
job re-score everyone, a chunk of customers per statement, for the signals that move with time alone
(silence, windows sliding past a complaint or a downgrade).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import procrastinate
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.churn import MODEL, ChurnAssessment, ChurnInputs, ChurnModel, assess
from domain.enums import CHURN_LEVELS
from domain.events import EventType
from infra.job_deps import JobDeps
from infra.repos import events as outbox
from infra.repos.base import Executor
from infra.repos.clocks import breached_sql

log = logging.getLogger("tierwise.churn")

CHUNK = 5000
REFRESH_TASK = "tierwise.churn_refresh"
# Their own queue: the service's worker takes it with the main one (infra/jobs.run_worker), tests take it alone.
REFRESH_QUEUE = "tierwise_churn"
_IDS = bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True)))

# Every scan is restricted to the chunk of customers (:ids), through the customer indexes.
_INPUTS_SQL = text(f"""
WITH base AS (
    SELECT c.id FROM customers c
    WHERE c.id = ANY(:ids) AND c.deleted_at IS NULL AND c.merged_into_id IS NULL
),
bought AS (
    SELECT p.customer_id, p.purchased_at, p.amount,
           extract(epoch FROM p.purchased_at - lag(p.purchased_at) OVER w) / 86400.0 AS gap
    FROM purchases p
    WHERE p.customer_id = ANY(:ids)
    -- purchases at the same instant make a gap of 0 in whichever order: no tie-breaker needed, so the
    -- covering index (customer_id, purchased_at) INCLUDE (amount) answers without reading the table
    WINDOW w AS (PARTITION BY p.customer_id ORDER BY p.purchased_at)
),
pur AS (
    SELECT customer_id,
           count(*) AS orders,
           extract(epoch FROM now() - max(purchased_at)) / 86400.0 AS days_since_last,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median_gap,
           count(gap) AS gaps,
           coalesce(sum(amount) FILTER (
               WHERE purchased_at > now() - make_interval(days => :spend_days)), 0) AS spend_recent,
           coalesce(sum(amount) FILTER (
               WHERE purchased_at <= now() - make_interval(days => :spend_days)
                 AND purchased_at > now() - make_interval(days => 2 * :spend_days)), 0) AS spend_prior
    FROM bought
    GROUP BY customer_id
),
ref AS (  -- refunds give back the spend of their purchase's period; a purchase refunded to zero is no order
    SELECT f.customer_id,
           count(*) FILTER (WHERE f.closes_purchase) AS closed_orders,
           coalesce(sum(f.amount) FILTER (
               WHERE f.purchased_at > now() - make_interval(days => :spend_days)), 0) AS refunded_recent,
           coalesce(sum(f.amount) FILTER (
               WHERE f.purchased_at <= now() - make_interval(days => :spend_days)
                 AND f.purchased_at > now() - make_interval(days => 2 * :spend_days)), 0) AS refunded_prior
    FROM refunds f
    WHERE f.customer_id = ANY(:ids)
    GROUP BY f.customer_id
),
com AS (
    SELECT k.customer_id,
           count(*) AS complaints,
           count(*) FILTER (WHERE {breached_sql("k")}) AS breached,
           count(*) FILTER (WHERE k.reopen_count > 0) AS reopened
    FROM complaints k
    WHERE k.customer_id = ANY(:ids) AND k.opened_at > now() - make_interval(days => :complaint_days)
    GROUP BY k.customer_id
),
resp AS MATERIALIZED (  -- the chunk's responses first, then their answers by response (not every answer)
    SELECT r.id, r.customer_id, r.submitted_at FROM survey_responses r
    WHERE r.customer_id = ANY(:ids) AND r.submitted_at > now() - make_interval(days => :score_days)
),
sco AS (
    SELECT r.customer_id,
           array_agg(a.score ORDER BY r.submitted_at DESC, a.id DESC) FILTER (WHERE q.kind = 'nps') AS nps,
           array_agg(a.score ORDER BY r.submitted_at DESC, a.id DESC) FILTER (WHERE q.kind = 'csat') AS csat
    FROM resp r
    JOIN survey_answers a ON a.response_id = r.id
    JOIN survey_questions q ON q.id = a.question_id
    WHERE q.kind IN ('nps', 'csat') AND a.score IS NOT NULL
    GROUP BY r.customer_id
),
dg AS (
    SELECT DISTINCT ON (t.customer_id) t.customer_id,
           extract(epoch FROM now() - t.changed_at) / 86400.0 AS days,
           t.from_tier || '→' || t.to_tier AS change
    FROM tier_changes t
    WHERE t.customer_id = ANY(:ids) AND t.change_type = 'downgrade'
      AND t.changed_at > now() - make_interval(days => :downgrade_days)
    ORDER BY t.customer_id, t.changed_at DESC, t.id DESC
)
SELECT b.id,
       coalesce(p.orders, 0) - coalesce(f.closed_orders, 0) AS orders, p.days_since_last, p.median_gap,
       coalesce(p.gaps, 0) AS gaps,
       coalesce(p.spend_recent, 0) - coalesce(f.refunded_recent, 0) AS spend_recent,
       coalesce(p.spend_prior, 0) - coalesce(f.refunded_prior, 0) AS spend_prior,
       coalesce(k.complaints, 0) AS complaints, coalesce(k.breached, 0) AS breached,
       coalesce(k.reopened, 0) AS reopened,
       s.nps[1] AS latest_nps, s.nps[2] AS previous_nps, s.csat[1] AS latest_csat, s.csat[2] AS previous_csat,
       d.days AS downgrade_days, d.change AS downgrade
FROM base b
LEFT JOIN pur p ON p.customer_id = b.id
LEFT JOIN ref f ON f.customer_id = b.id
LEFT JOIN com k ON k.customer_id = b.id
LEFT JOIN sco s ON s.customer_id = b.id
LEFT JOIN dg d ON d.customer_id = b.id
""").bindparams(_IDS)

# The scores written, and a ``churn.risk_raised`` event for every customer whose level rose (from none
# counting as the lowest): ``prior`` reads the levels as they were before this statement.
_LEVELS = "ARRAY[" + ", ".join(f"'{level}'" for level in CHURN_LEVELS) + "]"
_UPSERT_SQL = text(f"""
WITH u AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:levels AS text[]), CAST(:scores AS integer[]),
                         CAST(:signals AS text[])) AS u(id, level, score, signals)
),
prior AS (SELECT p.customer_id, p.level FROM churn_scores p WHERE p.customer_id IN (SELECT id FROM u)),
written AS (
    INSERT INTO churn_scores AS s (customer_id, level, score, signals, model_version, computed_at)
    SELECT u.id, u.level, u.score, CAST(u.signals AS jsonb), :version, now() FROM u
    ON CONFLICT (customer_id) DO UPDATE SET
        level = excluded.level, score = excluded.score, signals = excluded.signals,
        model_version = excluded.model_version, computed_at = excluded.computed_at
    RETURNING s.customer_id, s.level, s.model_version
),
raised AS (
    SELECT w.customer_id, p.level AS from_level, w.level AS to_level, w.model_version
    FROM written w LEFT JOIN prior p ON p.customer_id = w.customer_id
    WHERE array_position({_LEVELS}, w.level) > coalesce(array_position({_LEVELS}, p.level), 1)
)
{
    outbox.insert_sql(
        EventType.CHURN_RISK_RAISED,
        "raised",
        "s.customer_id",
        {
            "customerId": outbox.global_id_sql("Customer", "s.customer_id"),
            "fromLevel": "s.from_level",
            "toLevel": "s.to_level",
            "modelVersion": "s.model_version",
        },
    )
}
""")

# Customers merged away or deleted keep no score.
_FORGET_SQL = text("""
DELETE FROM churn_scores s USING customers c
WHERE c.id = s.customer_id AND s.customer_id = ANY(:ids) AND (c.deleted_at IS NOT NULL OR c.merged_into_id IS NOT NULL)
""").bindparams(_IDS)

_NEXT_IDS_SQL = text("""
SELECT id FROM customers WHERE id > CAST(:after AS uuid) ORDER BY id LIMIT :n
""")


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def inputs_of(row: Any) -> ChurnInputs:
    return ChurnInputs(
        orders=int(row.orders),
        days_since_last_purchase=_f(row.days_since_last),
        median_gap_days=_f(row.median_gap),
        gaps=int(row.gaps),
        spend_recent=float(row.spend_recent),
        spend_prior=float(row.spend_prior),
        complaints=int(row.complaints),
        breached_complaints=int(row.breached),
        reopened_complaints=int(row.reopened),
        latest_nps=row.latest_nps,
        previous_nps=row.previous_nps,
        latest_csat=row.latest_csat,
        previous_csat=row.previous_csat,
        days_since_downgrade=_f(row.downgrade_days),
        downgrade=row.downgrade,
    )


async def inputs_for(
    conn: Executor, customer_ids: Sequence[UUID], model: ChurnModel = MODEL
) -> dict[UUID, ChurnInputs]:
    """The inputs of the given live customers, in one statement."""
    params = {
        "ids": list(customer_ids),
        "spend_days": model.spend_window_days,
        "complaint_days": model.complaint_window_days,
        "score_days": model.score_window_days,
        "downgrade_days": model.downgrade_window_days,
    }
    return {row.id: inputs_of(row) for row in (await conn.execute(_INPUTS_SQL, params)).all()}


async def refresh(
    conn: Executor, customer_ids: Sequence[UUID], model: ChurnModel = MODEL
) -> dict[UUID, ChurnAssessment]:
    """Re-score the given customers now, in the caller's transaction (two statements, whatever their number)."""
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    scored = {cid: assess(inputs, model) for cid, inputs in (await inputs_for(conn, ids, model)).items()}
    if scored:
        await conn.execute(
            _UPSERT_SQL,
            {
                "ids": list(scored),
                "levels": [a.level for a in scored.values()],
                "scores": [a.score for a in scored.values()],
                "signals": [json.dumps(a.signals_json(), ensure_ascii=False) for a in scored.values()],
                "version": model.version,
            },
        )
    if len(scored) < len(ids):
        await conn.execute(_FORGET_SQL, {"ids": ids})
    return scored


# procrastinate's own defer function (migration 0003), called on the caller's connection: the job row is
# part of the caller's transaction, as a ``Task.defer_async`` through procrastinate's connector cannot be.
_DEFER_SQL = text("""
SELECT procrastinate_defer_jobs_v1(ARRAY[
    ROW(:queue, :task, 0, NULL, NULL, CAST(:args AS jsonb), NULL)::procrastinate_job_to_defer_v1])
""")


async def defer_refresh(conn: Executor, customer_ids: Sequence[UUID]) -> None:
    """Queue the re-score of ``customer_ids`` (one job), in the caller's transaction."""
    ids = [str(i) for i in dict.fromkeys(customer_ids)]
    if ids:
        await conn.execute(
            _DEFER_SQL,
            {"queue": REFRESH_QUEUE, "task": REFRESH_TASK, "args": json.dumps({"customer_ids": ids})},
        )


async def _next_ids(conn: Executor, after: UUID | None, n: int) -> list[UUID]:
    # a plain keyset bound (an index condition in a generic prepared plan): the nil uuid comes first
    start = after if after is not None else UUID(int=0)
    return list((await conn.execute(_NEXT_IDS_SQL, {"after": start, "n": n})).scalars())


async def recompute_all(conn: Executor, *, chunk: int = CHUNK) -> int:
    """Re-score every customer in the caller's transaction, ``chunk`` customers per statement."""
    done, after = 0, None
    while ids := await _next_ids(conn, after, chunk):
        done += len(await refresh(conn, ids))
        after = ids[-1]
    return done


async def scores_for(db: Executor, customer_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    rows = (
        await db.execute(
            text(
                "SELECT customer_id, level, score, signals, model_version, computed_at FROM churn_scores"
                " WHERE customer_id = ANY(:ids)"
            ).bindparams(_IDS),
            {"ids": list(customer_ids)},
        )
    ).all()
    return {r.customer_id: dict(r._mapping) for r in rows}


def register_jobs(app: procrastinate.App, deps: JobDeps) -> None:
    """The nightly re-score of everyone (``TIERWISE_CHURN_CRON``, after the nightly re-tier), one
    transaction per chunk so a large base never holds one long transaction; and the re-score of the
    customers of one purchase batch (``defer_refresh``)."""

    @app.periodic(cron=deps.settings.churn_cron, periodic_id="churn-nightly")
    @app.task(name="tierwise.churn_all", queue="tierwise", queueing_lock="churn_all")
    async def churn_all_job(timestamp: int) -> int:
        return await recompute_in_chunks(deps.engine)

    @app.task(name=REFRESH_TASK, queue=REFRESH_QUEUE)
    async def churn_refresh_job(customer_ids: list[str]) -> int:
        """The re-score a purchase batch deferred (``defer_refresh``), in its own transaction."""
        async with deps.engine.begin() as conn:
            return len(await refresh(conn, [UUID(i) for i in customer_ids]))


async def recompute_in_chunks(engine: AsyncEngine, *, chunk: int = CHUNK) -> int:
    done, after = 0, None
    while True:
        conn: AsyncConnection
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 0"))
            ids = await _next_ids(conn, after, chunk)
            if not ids:
                break
            done += len(await refresh(conn, ids))
        after = ids[-1]
    log.info("churn: %d customers scored", done)
    return done
