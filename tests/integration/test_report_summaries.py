"""The survey-score report (daily summaries) and the fairness report (complaint clocks, reach per tier)
of migration 0010 equal the raw queries, for many argument combinations, on seeded data and after
writes of every kind (new responses and invitations, changed and deleted answers and responses,
complaint transitions, the SLA sweep, tier changes, a merge, an erasure, a hard delete); and the triggers leave the
summaries exactly as a rebuild from the data would: with their deltas (migration 0027) not compacted, compacted
after each write, and compacted over and over while the writes run.

The deltas are appended, never upserted: ordinary writes for two customers of one tier and partner (a customer
created, a change of tier, an invitation, a survey response, a complaint resolved) do not wait for each other
(under the previous revision, 0010's upserts made the second wait for the first's commit, on the rows WRITES names: shown after a
downgrade); a compaction neither waits for a writer nor makes one wait. The downgrade folds the deltas in and
gives 0010's functions back, as 0010 wrote them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from demo.seed import seed
from domain.surveys import SCORE_BANDS
from infra import economics
from infra import sla as sla_repo
from infra.db import StatementCounter, create_engine
from infra.migrate import alembic_config
from infra.repos import quality
from infra.repos import reports as reports_repo
from infra.repos import surveys as surveys_repo
from infra.repos.base import ALL, Scope
from tests.conftest import test_settings
from tests.integration.compaction import (
    COMPACTIONS,
    NO_WAIT_S,
    blocked_by,
    compaction,
    connections,
)

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
# The summaries writers add to, and their deltas (migration 0027): what the reports read is their rows summed
# per key.
DELTAS = {
    "report_score_days": ("report_score_day_deltas", "day, kind, survey_id, tier, channel"),
    "report_invitation_days": ("report_invitation_day_deltas", "day, survey_id, tier, channel"),
    "report_complaint_tiers": ("report_complaint_tier_deltas", "tier"),
    "report_tier_reach": ("report_tier_reach_deltas", "tier"),
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
        for name, (deltas, _key) in DELTAS.items():  # each summary with its deltas
            assert any(name in q and deltas in q for q in read.statements), (name, read.statements)
        assert not any(re.search(r"\b(FROM|JOIN)\s+(survey_answers|complaints)\b", q) for q in read.statements), (
            read.statements
        )
        assert summarised == await reports_repo.fairness(conn, since=None, until=None, scope=ALL, summaries=False)
        assert len(summarised) >= 2
        assert all(r["complaints"] > 0 and r["customers"] > 0 for r in summarised)
        assert any(r["median_first_response_minutes"] is not None for r in summarised)
        compared += 1
    return compared


def _folded(name: str, *, with_deltas: bool = True) -> str:
    """The rows of the summary table ``name`` as the reports read them: with its deltas summed in per key
    (``with_deltas``, for those that have some), the rows whose sums are not all 0."""
    cols = SUMMARY_TABLES[name]
    if name not in DELTAS or not with_deltas:
        return f"SELECT {cols} FROM {name} WHERE {NON_ZERO[name]}"
    deltas, key = DELTAS[name]
    sums = [c.strip() for c in cols.split(",")][len(key.split(",")) :]
    rows = f"SELECT {cols} FROM {name} UNION ALL SELECT {cols} FROM {deltas}"
    return (
        f"SELECT {key}, {', '.join(f'sum({x})' for x in sums)} FROM ({rows}) s GROUP BY {key}"
        f" HAVING {' OR '.join(f'sum({x}) <> 0' for x in sums)}"
    )


async def _summed(conn: AsyncConnection, *, with_deltas: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every summary table's rows (``_folded``), sorted."""
    return {
        name: sorted(map(tuple, (await conn.execute(text(_folded(name, with_deltas=with_deltas)))).all()), key=str)
        for name in SUMMARY_TABLES
    }


async def _pending(conn: AsyncConnection) -> int:
    """The delta rows not compacted yet."""
    return int(await _scalar(conn, f"SELECT {' + '.join(f'(SELECT count(*) FROM {d})' for d, _ in DELTAS.values())}"))


async def _assert_rebuilt_equal(engine: AsyncEngine) -> None:
    """The summaries (and deltas) the triggers and compactions left equal the summaries a rebuild computes from
    the data (which leaves no delta)."""
    async with engine.begin() as conn:
        before = await _summed(conn)
        await conn.execute(text("SELECT report_summaries_rebuild()"))
        assert await _pending(conn) == 0
        after = await _summed(conn, with_deltas=False)
        await conn.rollback()
    for name in SUMMARY_TABLES:
        assert before[name] == after[name], name


async def _compact(engine: AsyncEngine) -> None:
    """Every pending delta into the summaries, by the job's body (nothing else runs)."""
    moved = await economics.compact(engine)
    assert moved is not None
    async with engine.connect() as conn:
        assert await _pending(conn) == 0


async def _pending_now(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await _pending(conn)


async def _compact_once(engine: AsyncEngine) -> int | None:
    async with engine.begin() as conn:
        return await reports_repo.compact_summaries(conn)


def _compaction(engine: AsyncEngine, how: str) -> contextlib.AbstractAsyncContextManager[Callable[[], Awaitable[None]]]:
    """The block's writes under one of COMPACTIONS (tests/integration/compaction.py), by the report summaries' compaction."""
    return compaction(
        how,
        compact_all=lambda: _compact(engine),
        compact_once=lambda: _compact_once(engine),
        pending=lambda: _pending_now(engine),
    )


@pytest.mark.parametrize("compaction", COMPACTIONS)
async def test_seeded_summaries_equal_the_raw_reports(engine: AsyncEngine, compaction: str) -> None:
    async with _compaction(engine, compaction):
        async with engine.connect() as conn:
            summed = await _summed(conn)
        # the seed's COPY went through the triggers
        assert sum(r[6] for r in summed["report_score_days"]) > 100
        assert sum(r[4] for r in summed["report_invitation_days"]) > 100
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


@pytest.mark.parametrize("compaction", COMPACTIONS)
async def test_writes_keep_the_summaries_equal_to_the_raw_reports(engine: AsyncEngine, compaction: str) -> None:
    async with _compaction(engine, compaction) as settle:
        await _write_and_compare(engine, settle)


async def _write_and_compare(engine: AsyncEngine, settle: Callable[[], Awaitable[None]]) -> None:
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
    await settle()
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
    await settle()
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
    await settle()
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
    await settle()
    await _assert_rebuilt_equal(engine)
    assert await _assert_same(engine, thorough=True) > 1000


# ---------------------------------------------------------------- concurrency (migration 0027)

# Ordinary writes for one customer ($1; $2: a survey with an NPS question), each in a transaction of its own; and
# whether, under migration 0010's upserts (the previous revision), the same write for another customer of the same
# tier and partner waits for it to commit, and on which summary rows.
WRITES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "customer created": (
        (
            "INSERT INTO customers (name, partner_id, tier_code) SELECT 'Newcomer', partner_id, tier_code"
            " FROM customers WHERE id = $1",
        ),
        "report_tier_reach: the tier's row",
    ),
    "tier changed": (
        (
            "UPDATE customers SET tier_code = CASE WHEN tier_code = 'gold' THEN 'silver' ELSE 'gold' END,"
            " tier_since = now() WHERE id = $1",
        ),
        "report_tier_reach: the old tier's row and the new one's",
    ),
    "invited": (
        (
            "INSERT INTO survey_invitations (survey_id, customer_id, channel, sent_at, tier_at_invitation)"
            " SELECT $2, id, 'email', now(), tier_code FROM customers WHERE id = $1",
        ),
        "report_invitation_days (today, survey, tier, channel) and report_tier_reach (the first invitation)",
    ),
    "survey answered": (
        (
            "INSERT INTO survey_responses (survey_id, customer_id, partner_id, channel, tier_at_response, submitted_at)"
            " SELECT $2, id, partner_id, 'email', tier_code, now() FROM customers WHERE id = $1",
            "INSERT INTO survey_answers (response_id, question_id, score)"
            " SELECT r.id, q.id, 9 FROM survey_responses r JOIN survey_questions q ON q.survey_id = r.survey_id"
            " WHERE r.customer_id = $1 AND r.survey_id = $2 AND q.kind = 'nps'",
        ),
        "report_score_days (today, nps, survey, tier, channel) and report_tier_reach (the first response)",
    ),
    "complaint opened": (
        (
            """INSERT INTO complaints (customer_id, partner_id, subject, description, category_code, tier_at_open,
                                      sla_policy_version, first_response_due_at, resolution_due_at)
               SELECT c.id, c.partner_id, k.subject, k.description, k.category_code, c.tier_code,
                      k.sla_policy_version, now() + interval '1 hour', now() + interval '2 days'
               FROM customers c, (SELECT * FROM complaints ORDER BY id LIMIT 1) k WHERE c.id = $1""",
        ),
        None,  # its clocks run: only its own row of report_complaint_clocks
    ),
    "complaint resolved": (
        (
            """UPDATE complaints SET status = 'resolved', first_responded_at = now(), resolved_at = now()
               WHERE customer_id = $1 AND resolved_at IS NULL""",
        ),
        "report_complaint_tiers: the tier's row (its clocks settled)",
    ),
}
# Long enough for a statement that waits for no one on a loaded machine; one that waits never ends.


# Two new customers of one silver customer's name and partner.
NEWCOMERS = """
INSERT INTO customers (name, partner_id, tier_code)
SELECT c.name, c.partner_id, c.tier_code FROM generate_series(1, 2),
    (SELECT name, partner_id, tier_code FROM customers
     WHERE deleted_at IS NULL AND merged_into_id IS NULL AND tier_code = 'silver' AND partner_id IS NOT NULL
     ORDER BY id LIMIT 1) c
RETURNING id"""


async def _newcomers(engine: AsyncEngine) -> tuple[UUID, UUID, UUID]:
    """Two new customers of one tier and partner, never invited, who never answered, each with a complaint
    whose clocks run; and a survey with an NPS question."""
    async with engine.begin() as conn:
        a, b = (await conn.execute(text(NEWCOMERS))).scalars().all()
        survey = await _scalar(conn, "SELECT survey_id FROM survey_questions WHERE kind = 'nps' ORDER BY 1 LIMIT 1")
    async with connections(engine, 1) as (writer,):
        for customer in (a, b):
            await _write(writer, "complaint opened", customer, survey)
    return a, b, survey


async def _write(conn: asyncpg.Connection, write: str, customer: UUID, survey: UUID) -> None:
    for statement in WRITES[write][0]:
        await conn.execute(statement, *(customer, survey)[: 2 if "$2" in statement else 1])


async def _waiting_writes(engine: AsyncEngine) -> set[str]:
    """Each of WRITES for two new customers of one tier and partner, in two transactions: the first stays open
    while the second writes (and, if it did not wait, commits). The writes whose second waited for the first;
    all committed in the end."""
    waited: set[str] = set()
    for write in WRITES:
        a, b, survey = await _newcomers(engine)
        async with connections(engine, 3) as (first, second, observer):
            tx = second.transaction()
            async with first.transaction():
                await _write(first, write, a, survey)
                await tx.start()
                writing = asyncio.create_task(_write(second, write, b, survey))
                if await blocked_by(observer, first, writing):
                    waited.add(write)
                else:
                    await tx.commit()  # before the first
            if write in waited:  # the first committed: the second goes on
                await asyncio.wait_for(writing, NO_WAIT_S)
                await tx.commit()
    return waited


async def test_writers_of_different_customers_do_not_wait_for_each_other(engine: AsyncEngine) -> None:
    assert await _waiting_writes(engine) == set()
    assert await _waiting_writes(engine) == set()  # with the first round's deltas there
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine, thorough=False)
    await _compact(engine)
    await _assert_same(engine, thorough=False)


async def test_a_compaction_takes_committed_deltas_and_neither_waits_nor_makes_wait(engine: AsyncEngine) -> None:
    a, b, survey = await _newcomers(engine)
    await _compact(engine)
    async with connections(engine, 3) as (writer, compactor, other):
        async with writer.transaction():
            await _write(writer, "survey answered", a, survey)  # not committed: not the compaction's
            async with compactor.transaction():
                moved = await asyncio.wait_for(compactor.fetchval("SELECT report_summaries_compact()"), NO_WAIT_S)
                assert moved == 0
                # while this compaction is open (its lock held): a second one does nothing, a writer goes on
                assert await asyncio.wait_for(other.fetchval("SELECT report_summaries_compact()"), NO_WAIT_S) is None
                await asyncio.wait_for(_write(writer, "survey answered", b, survey), NO_WAIT_S)
        # both responses committed now: their score deltas, reach deltas (first responses)
        assert await compactor.fetchval("SELECT report_summaries_compact()") > 0
        assert (
            await compactor.fetchval(f"SELECT {' + '.join(f'(SELECT count(*) FROM {d})' for d, _ in DELTAS.values())}")
            == 0
        )
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine, thorough=False)


# ---------------------------------------------------------------- the migration


def _migration() -> Any:
    [path] = Path(__file__).parents[2].glob("infra/migrations/versions/*_report_summary_deltas.py")
    return importlib.import_module(f"infra.migrations.versions.{path.stem}")


async def test_migration_downgrades_to_the_previous_revision_and_upgrades(engine: AsyncEngine) -> None:
    migration = _migration()
    url = engine.url.render_as_string(hide_password=False)
    await _compact(engine)
    async with engine.begin() as conn:  # summaries and pending deltas both
        for statement in (
            """UPDATE survey_answers SET score = 10 - score
               WHERE id IN (SELECT id FROM survey_answers WHERE score IS NOT NULL ORDER BY id LIMIT 20)""",
            """UPDATE customers SET tier_code = CASE WHEN tier_code = 'gold' THEN 'silver' ELSE 'gold' END
               WHERE id IN (SELECT customer_id FROM survey_invitations ORDER BY id LIMIT 15)""",
            """UPDATE complaints SET status = 'resolved', resolved_at = now()
               WHERE id IN (SELECT id FROM complaints WHERE resolved_at IS NULL ORDER BY id LIMIT 5)""",
        ):
            await conn.execute(text(statement))
        summed = await _summed(conn)
        assert await _pending(conn) > 0
    await engine.dispose()  # no cached plan of a dropped table

    await asyncio.to_thread(command.downgrade, alembic_config(url), migration.down_revision)
    async with engine.begin() as conn:
        assert await _summed(conn, with_deltas=False) == summed  # the deltas folded in
        names = [d for d, _ in DELTAS.values()]
        assert await _scalar(conn, "SELECT count(*) FROM pg_class WHERE relname = ANY(:n)", n=names) == 0
        assert await _scalar(conn, "SELECT count(*) FROM pg_proc WHERE proname = 'report_summaries_compact'") == 0
        functions = await conn.execute(text("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'report%'"))
        got = {r[0]: re.sub(r"\s+", "", r[1]) for r in functions.all()}
    frozen = importlib.import_module("infra.migrations.versions.0010_report_summaries")  # it never changes
    assert got == _sources(frozen.FUNCTIONS + frozen.FAIRNESS_FUNCTIONS)  # 0010's functions, as 0010 wrote them
    async with engine.begin() as conn:
        await conn.execute(text("SELECT report_summaries_rebuild()"))
        assert await _summed(conn, with_deltas=False) == summed
    # what the migration is for: under 0010's upserts, these writes of different customers waited
    assert await _waiting_writes(engine) == {w for w, (_, rows) in WRITES.items() if rows}

    await engine.dispose()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    async with engine.connect() as conn:
        functions = await conn.execute(text("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'report%'"))
        upserting = [r[0] for r in functions.all() if re.search(r"INSERT INTO report_\w+ AS t ", r[1])]
    assert upserting == ["report_summaries_compact"]  # no writer upserts into a summary
    assert await _waiting_writes(engine) == set()
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine, thorough=False)
    await _compact(engine)
    await _assert_same(engine, thorough=False)


def _sources(sql: str) -> dict[str, str]:
    """The bodies of the functions an SQL script creates, without whitespace, by name."""
    found = re.finditer(r"CREATE (?:OR REPLACE )?FUNCTION (\w+)\(.*?AS \$\$(.*?)\$\$", sql, re.DOTALL)
    return {m[1]: re.sub(r"\s+", "", m[2]) for m in found}
