"""The survey-score report (daily summaries) and the fairness report (complaint clocks, reach per tier)
of migration 0010 equal the raw queries, for many argument combinations, on seeded data and after
writes of every kind (new responses and invitations, changed and deleted answers and responses,
complaint transitions, the SLA sweep, tier changes, a merge, an erasure, a hard delete); and the triggers leave the
summaries exactly as a rebuild from the data would."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from demo.seed import seed
from domain.surveys import SCORE_BANDS
from infra import sla as sla_repo
from infra.db import StatementCounter, create_engine
from infra.repos import quality
from infra.repos import reports as reports_repo
from infra.repos import surveys as surveys_repo
from infra.repos.base import ALL, Scope
from tests.conftest import test_settings

CUSTOMERS = 600
FreshUrl = Callable[[], Awaitable[str]]
SUMMARY_TABLES = {
    "report_score_days": "day, kind, survey_id, tier, channel, responses, answers, positive, negative",
    "report_invitation_targets": "survey_id, customer_id, complaint_key, day, tier, channel, answered",
    "report_invitation_days": "day, survey_id, tier, channel, invitations, answered",
    "report_complaint_clocks": "id, tier_at_open, opened_at, first_response_due_at, resolution_due_at,"
    " first_responded_at, resolved_at, paused_since, paused_seconds, first_response_breached,"
    " resolution_breached, first_response_s, resolution_s",
    "report_tier_reach": "tier, customers, invited, answered",
    "report_complaint_tiers": "tier, complaints, with_sla, breached, responded, resolved",
}
NON_ZERO = {
    "report_score_days": "answers <> 0 OR responses <> 0",
    "report_invitation_targets": "true",
    "report_invitation_days": "invitations <> 0 OR answered <> 0",
    "report_complaint_clocks": "true",
    "report_tier_reach": "customers <> 0 OR invited <> 0 OR answered <> 0",
    "report_complaint_tiers": "complaints <> 0 OR with_sla <> 0 OR breached <> 0 OR responded <> 0 OR resolved <> 0",
}


@pytest.fixture
async def engine(fresh_database_url: FreshUrl) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await fresh_database_url(), test_settings())
    try:
        await seed(engine, CUSTOMERS, seed=11, progress=False)
        yield engine
    finally:
        await engine.dispose()


async def _scalar(conn: AsyncConnection, sql: str, **params: Any) -> Any:
    return (await conn.execute(text(sql), params)).scalar()


async def _ranges(conn: AsyncConnection) -> list[tuple[dt.datetime | None, dt.datetime | None]]:
    first = await _scalar(conn, "SELECT date_trunc('day', min(submitted_at), 'UTC') FROM survey_responses")
    last = await _scalar(conn, "SELECT date_trunc('day', max(submitted_at), 'UTC') FROM survey_responses")
    assert first is not None
    assert last is not None
    assert last > first
    middle = first + (last - first) / 2
    mid_day = dt.datetime(middle.year, middle.month, middle.day, tzinfo=dt.UTC)
    berlin = dt.timezone(dt.timedelta(hours=1))
    return [
        (None, None),
        (mid_day, None),
        (None, mid_day),
        (first + dt.timedelta(days=3), mid_day + dt.timedelta(days=40)),
        (mid_day.astimezone(berlin), None),  # a UTC midnight written in another zone: still whole days
        (mid_day + dt.timedelta(hours=5), None),  # not whole days: the raw query
        (first, first + dt.timedelta(days=1)),
    ]


async def _assert_same(engine: AsyncEngine, *, thorough: bool) -> int:
    """Every argument combination gives the same rows from the summaries as from the raw query."""
    compared = 0
    async with engine.connect() as conn:
        ranges = await _ranges(conn)
        surveys = [None, *[r[0] for r in (await conn.execute(text("SELECT id FROM surveys ORDER BY id"))).all()]]
        all_groups = ["SURVEY", "TIER", "CHANNEL", "PERIOD"]
        group_sets = [list(c) for n in range(len(all_groups) + 1) for c in itertools.combinations(all_groups, n)] + [
            ["TIER", "DIMENSION"]
        ]
        for kind in SCORE_BANDS:
            for groups in group_sets if thorough else [[], ["TIER"], ["PERIOD", "CHANNEL"], ["SURVEY", "TIER"]]:
                periods = ["day", "week", "month"] if "PERIOD" in groups else ["month"]
                for period, (since, until), survey in itertools.product(
                    periods, ranges, surveys if thorough else surveys[:2]
                ):
                    args: dict[str, Any] = dict(
                        kind=kind, group_by=groups, period=period, since=since, until=until, survey_id=survey, scope=ALL
                    )
                    summarised = await reports_repo.survey_scores(conn, **args)
                    raw = await reports_repo.survey_scores(conn, **args, summaries=False)
                    assert summarised == raw, args
                    compared += 1
        # the summarised answers really come from the summaries (else the comparisons above were raw to raw)
        with StatementCounter(conn.engine) as read:
            await reports_repo.survey_scores(
                conn,
                kind=next(iter(SCORE_BANDS)),
                group_by=["TIER"],
                period="month",
                since=None,
                until=None,
                survey_id=None,
                scope=ALL,
            )
            summarised = await reports_repo.fairness(conn, since=None, until=None, scope=ALL)
        assert any("report_score_days" in q for q in read.statements), read.statements
        assert any("report_complaint_clocks" in q for q in read.statements), read.statements
        assert not any(re.search(r"\b(FROM|JOIN)\s+(survey_answers|complaints)\b", q) for q in read.statements), (
            read.statements
        )
        assert summarised == await reports_repo.fairness(conn, since=None, until=None, scope=ALL, summaries=False)
        assert len(summarised) >= 2
        assert all(r["complaints"] > 0 and r["customers"] > 0 for r in summarised)
        assert any(r["median_first_response_minutes"] is not None for r in summarised)
        compared += 1
    return compared


async def _assert_rebuilt_equal(engine: AsyncEngine) -> None:
    """The summaries the triggers kept equal those a rebuild computes from the data."""
    async with engine.begin() as conn:
        before = {
            name: sorted(
                map(tuple, (await conn.execute(text(f"SELECT {cols} FROM {name} WHERE {NON_ZERO[name]}"))).all())
            )
            for name, cols in SUMMARY_TABLES.items()
        }
        await conn.execute(text("SELECT report_summaries_rebuild()"))
        after = {
            name: sorted(map(tuple, (await conn.execute(text(f"SELECT {cols} FROM {name}"))).all()))
            for name, cols in SUMMARY_TABLES.items()
        }
        await conn.rollback()
    for name in SUMMARY_TABLES:
        assert before[name] == after[name], name


async def test_seeded_summaries_equal_the_raw_reports(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        answers = await _scalar(conn, "SELECT sum(answers) FROM report_score_days")
        invitations = await _scalar(conn, "SELECT sum(invitations) FROM report_invitation_days")
    # the seed's COPY went through the triggers
    assert answers > 100
    assert invitations > 100
    await _assert_rebuilt_equal(engine)
    assert await _assert_same(engine, thorough=True) > 1000


async def _customer_pair(conn: AsyncConnection) -> tuple[UUID, UUID]:
    """Two live customers of one partner who both answered and were invited to the same survey."""
    row = (
        await conn.execute(
            text(
                """SELECT a.customer_id, b.customer_id FROM survey_responses a
                   JOIN survey_responses b ON b.survey_id = a.survey_id AND b.customer_id <> a.customer_id
                   JOIN customers ca ON ca.id = a.customer_id JOIN customers cb ON cb.id = b.customer_id
                   WHERE ca.partner_id IS NOT DISTINCT FROM cb.partner_id
                     AND ca.deleted_at IS NULL AND cb.deleted_at IS NULL
                     AND ca.merged_into_id IS NULL AND cb.merged_into_id IS NULL
                     AND ca.erased_at IS NULL AND cb.erased_at IS NULL
                     AND EXISTS (SELECT 1 FROM survey_invitations i WHERE i.customer_id = b.customer_id)
                   ORDER BY a.id LIMIT 1"""
            )
        )
    ).one()
    return row[0], row[1]


async def _hard_delete_customer(conn: AsyncConnection) -> None:
    """Delete a live customer with complaints, invitations and responses, and every row referencing them: no
    service path deletes a customer or a complaint (erasure anonymises), a clean-up by hand may, and the
    DELETE triggers of customers and complaints must then take them out of the summaries."""
    customer = await _scalar(
        conn,
        """SELECT c.id FROM customers c WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
             AND EXISTS (SELECT 1 FROM complaints k WHERE k.customer_id = c.id)
             AND EXISTS (SELECT 1 FROM survey_responses r WHERE r.customer_id = c.id)
             AND NOT EXISTS (SELECT 1 FROM customers m WHERE m.merged_into_id = c.id)
             AND NOT EXISTS (SELECT 1 FROM customer_merges g WHERE c.id IN (g.survivor_id, g.duplicate_id))
           ORDER BY c.id LIMIT 1""",
    )
    assert customer is not None
    theirs = "SELECT id FROM complaints WHERE customer_id = :c"
    for statement in (
        f"DELETE FROM complaint_events WHERE complaint_id IN ({theirs})",
        f"DELETE FROM survey_responses WHERE customer_id = :c OR complaint_id IN ({theirs})",
        f"DELETE FROM survey_invitations WHERE customer_id = :c OR complaint_id IN ({theirs})",
        f"UPDATE complaints SET follow_up_of_id = NULL WHERE follow_up_of_id IN ({theirs})",
        "DELETE FROM complaints WHERE customer_id = :c",
        "DELETE FROM purchases WHERE customer_id = :c",
        "DELETE FROM tier_changes WHERE customer_id = :c",
        "DELETE FROM consent_events WHERE customer_id = :c",
        "DELETE FROM customers WHERE id = :c",
    ):
        await conn.execute(text(statement), {"c": customer})


async def test_writes_keep_the_summaries_equal_to_the_raw_reports(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        survey_id, questions = await _scalar(
            conn,
            """SELECT row(s.id, array_agg(q.id ORDER BY q.position)) FROM surveys s
               JOIN survey_questions q ON q.survey_id = s.id AND q.kind = 'nps' GROUP BY s.id ORDER BY s.id LIMIT 1""",
        )
    async with engine.begin() as conn:
        # New responses through the repository (one survey per customer: pick customers who did not answer it).
        fresh = [
            r[0]
            for r in (
                await conn.execute(
                    text(
                        """SELECT c.id FROM customers c WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
                           AND NOT EXISTS (SELECT 1 FROM survey_responses r WHERE r.customer_id = c.id
                                           AND r.survey_id = :s AND r.complaint_id IS NULL)
                           ORDER BY c.id LIMIT 12"""
                    ),
                    {"s": survey_id},
                )
            ).all()
        ]
        for n, customer_id in enumerate(fresh):
            await surveys_repo.insert_response(
                conn,
                {
                    "survey_id": survey_id,
                    "customer_id": customer_id,
                    "channel": "email",
                    "submitted_at": dt.datetime(2025, 3, 1 + n, 10, tzinfo=dt.UTC),
                },
                [{"question_id": q, "score": n % 11} for q in questions],
            )
        # Invitations, one of them earlier than the key's first (the target moves to it).
        await conn.execute(
            text(
                """INSERT INTO survey_invitations (survey_id, customer_id, complaint_id, channel, sent_at, tier_at_invitation)
                   SELECT :s, c.id, NULL, 'sms', timestamptz '2024-01-02 08:00+00', c.tier_code
                   FROM customers c WHERE c.id = ANY(:ids)"""
            ),
            {"s": survey_id, "ids": fresh[:6]},
        )
        await conn.execute(
            text(
                """INSERT INTO survey_invitations (survey_id, customer_id, complaint_id, channel, sent_at, tier_at_invitation)
                   SELECT survey_id, customer_id, complaint_id, 'email', sent_at - interval '2 days', 'gold'
                   FROM survey_invitations ORDER BY id LIMIT 5"""
            )
        )
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine, thorough=False)

    async with engine.begin() as conn:
        # Changed and deleted answers; a response moved in time and tier; a response deleted (its answers cascade).
        for statement in (
            """UPDATE survey_answers SET score = 10 - score
               WHERE id IN (SELECT id FROM survey_answers WHERE score IS NOT NULL ORDER BY id LIMIT 20)""",
            """DELETE FROM survey_answers
               WHERE id IN (SELECT id FROM survey_answers WHERE score IS NOT NULL ORDER BY id DESC LIMIT 7)""",
            """UPDATE survey_answers SET score = NULL
               WHERE id IN (SELECT id FROM survey_answers WHERE score IS NOT NULL ORDER BY id LIMIT 3 OFFSET 50)""",
        ):
            await conn.execute(text(statement))
        await conn.execute(
            text(
                """UPDATE survey_responses SET submitted_at = submitted_at - interval '3 days', tier_at_response = 'gold'
                   WHERE id IN (SELECT id FROM survey_responses ORDER BY id LIMIT 9)"""
            )
        )
        for table, n in (("survey_responses", 4), ("survey_invitations", 6)):
            await conn.execute(
                text(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id DESC LIMIT {n})")
            )
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine, thorough=False)

    async with engine.begin() as conn:
        # Complaint clocks: transitions written as the service does, then the SLA sweep's breaches and closes.
        await conn.execute(
            text(
                """UPDATE complaints SET status = 'open', first_responded_at = opened_at + interval '7 minutes'
                   WHERE id IN (SELECT id FROM complaints WHERE status = 'new' ORDER BY id LIMIT 5)"""
            )
        )
        await conn.execute(
            text(
                """UPDATE complaints SET status = 'resolved', resolved_at = now(), paused_seconds = paused_seconds + 60
                   WHERE id IN (SELECT id FROM complaints WHERE status = 'open' ORDER BY id LIMIT 5)"""
            )
        )
        await sla_repo.sweep(conn, auto_close_days=1, critical_fraction=0.5)
        # Tier changes of live customers move them (and their reach) between tiers.
        await conn.execute(
            text(
                """UPDATE customers SET tier_code = CASE WHEN tier_code = 'gold' THEN 'silver' ELSE 'gold' END
                   WHERE id IN (SELECT customer_id FROM survey_invitations ORDER BY id LIMIT 15)"""
            )
        )
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine, thorough=False)

    async with engine.begin() as conn:
        survivor, duplicate = await _customer_pair(conn)
        await quality.merge(conn, survivor, duplicate, scope=Scope(), actor="test", request_id=None)
        erased = (
            await conn.execute(text("SELECT customer_id FROM survey_responses ORDER BY submitted_at LIMIT 1"))
        ).scalar_one()
        await quality.erase(conn, erased, scope=Scope(), actor="test", request_id=None)
        await _hard_delete_customer(conn)
    await _assert_rebuilt_equal(engine)
    assert await _assert_same(engine, thorough=True) > 1000
