"""The economics report from its summaries (migrations 0023, 0024) equals the statement it replaced — summing each
fact table per customer and joining every live customer, kept here as the reference — on seeded data with
refunds and benefit uses, for whole and partial days, open complaints and complaints resolved after the period,
staff and partner scopes; and stays equal after writes of every kind (purchases, refunds, benefit uses,
complaints opened, paused and resolved, survey responses, tier changes, a merge, an erasure, a hard delete),
with the triggers' deltas leaving summaries plus deltas exactly as a rebuild from the data would: with the
deltas not compacted, compacted after each write, and compacted over and over while the writes run.

The deltas are appended, never upserted: two transactions writing facts of the same day, tier
and partner do not wait for each other (under 0023 the second waited for the first to commit: shown after a
downgrade); a compaction neither waits for a writer nor makes one wait, and a delta committed while it runs
stays for the next one (never lost, never counted twice). The downgrade folds the deltas in and gives 0023's
functions back, as 0023 wrote them.

A fact written while another transaction changes its customer's tier counts under the new tier, whichever
of the two writes first and commits last (migration 0028: the fact triggers lock their customers; under 0024
neither waited and the fact stayed under the old tier until a rebuild, shown after a downgrade); two writers
of two customers in opposite orders deadlock, and the one PostgreSQL lets through leaves the summaries right."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from demo.seed import seed
from domain import economics as rules
from infra import economics
from infra.db import StatementCounter, create_engine
from infra.jobs import QUEUE
from infra.migrate import alembic_config
from infra.repos import economics as economics_repo
from infra.repos import quality
from infra.repos import scope as readable
from infra.repos.base import ALL, Scope
from tests.conftest import running_api, test_settings
from tests.integration.compaction import (
    COMPACTIONS,
    NO_WAIT_S,
    blocked_by,
    compaction,
    connections,
)

CUSTOMERS = 500
FreshUrl = Callable[[], Awaitable[str]]

# The report's statement before the summaries (infra/repos/economics.py until migration 0023): the reference.
REFERENCE = """
WITH c AS (
    SELECT c.id, c.tier_code FROM customers c
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL{scope}
),
p AS (
    SELECT customer_id, sum(amount) AS revenue FROM purchases
    WHERE purchased_at >= :since AND purchased_at < :until GROUP BY customer_id
),
r AS (
    SELECT customer_id, sum(amount) AS refunds FROM refunds
    WHERE refunded_at >= :since AND refunded_at < :until GROUP BY customer_id
),
b AS (
    SELECT customer_id, sum(cost) AS cost, count(*) AS uses FROM benefit_redemptions
    WHERE redeemed_at >= :since AND redeemed_at < :until GROUP BY customer_id
),
k AS (
    SELECT customer_id, count(*) AS complaints,
           sum(greatest(
               extract(epoch FROM least(coalesce(resolved_at, now()), CAST(:until AS timestamptz)) - opened_at)
               - paused_seconds, 0)) / 3600.0 AS hours
    FROM complaints
    WHERE opened_at >= :since AND opened_at < :until GROUP BY customer_id
),
s AS (
    SELECT customer_id, count(*) AS responses FROM survey_responses
    WHERE submitted_at >= :since AND submitted_at < :until GROUP BY customer_id
)
SELECT c.tier_code AS tier, t.rank, count(*) AS customers,
       coalesce(sum(p.revenue), 0) AS revenue, coalesce(sum(r.refunds), 0) AS refunds,
       coalesce(sum(b.cost), 0) AS benefit_cost, coalesce(sum(b.uses), 0) AS benefit_uses,
       coalesce(sum(k.complaints), 0) AS complaints, coalesce(sum(k.hours), 0) AS hours,
       coalesce(sum(s.responses), 0) AS responses
FROM c
LEFT JOIN p ON p.customer_id = c.id
LEFT JOIN r ON r.customer_id = c.id
LEFT JOIN b ON b.customer_id = c.id
LEFT JOIN k ON k.customer_id = c.id
LEFT JOIN s ON s.customer_id = c.id
LEFT JOIN tiers t ON t.code = c.tier_code
     AND t.policy_id = (SELECT id FROM tier_policies WHERE status = 'active')
GROUP BY c.tier_code, t.rank
"""
# Each summary table: its deltas, its key, its sums.
SUMMARIES = {
    "economics_days": (
        "economics_day_deltas",
        "day, tier, partner_id",
        ("revenue", "refunds", "benefit_cost", "benefit_uses", "complaints", "complaint_seconds", "responses"),
    ),
    "economics_reach": ("economics_reach_deltas", "tier, partner_id", ("customers",)),
}
# Each customer's hours rounded at 16 significant digits, summed (the reference) against the tier's seconds
# / 3600 (the summaries): the only difference allowed, far below the report's cents.
HOURS_TOLERANCE = Decimal("1e-12")


@pytest.fixture
async def engine(fresh_database_url: FreshUrl) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await fresh_database_url(), test_settings())
    try:
        await seed(engine, CUSTOMERS, seed=23, progress=False)
        yield engine
    finally:
        await engine.dispose()


async def _scalar(conn: AsyncConnection, sql: str, **params: Any) -> Any:
    return (await conn.execute(text(sql), params)).scalar()


async def _reference(
    conn: AsyncConnection, since: dt.datetime, until: dt.datetime, scope: Scope
) -> list[rules.TierTotals]:
    rows = (
        await conn.execute(
            text(REFERENCE.format(scope=readable.customers_sql(scope, "c"))),
            {"since": since, "until": until, **readable.params(scope)},
        )
    ).all()
    return [
        rules.TierTotals(
            r.tier,
            r.rank,
            int(r.customers),
            Decimal(r.revenue),
            Decimal(r.refunds),
            Decimal(r.benefit_cost),
            int(r.benefit_uses),
            int(r.complaints),
            Decimal(r.hours),
            int(r.responses),
        )
        for r in rows
    ]


def _key(t: rules.TierTotals) -> str:
    return t.tier or ""


async def _periods(conn: AsyncConnection) -> list[tuple[dt.datetime, dt.datetime]]:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = await _scalar(conn, "SELECT min(purchased_at) FROM purchases")
    berlin = dt.timezone(dt.timedelta(hours=1))
    return [
        (today - dt.timedelta(days=90), today + dt.timedelta(days=1)),  # the bench's: whole days, until tomorrow
        (today - dt.timedelta(days=365), today + dt.timedelta(days=1)),
        (first - dt.timedelta(days=1), today + dt.timedelta(days=2)),  # everything
        (today - dt.timedelta(days=200, hours=7), today - dt.timedelta(days=20, hours=-5, minutes=13)),  # partial
        (today - dt.timedelta(days=40), today - dt.timedelta(days=10)),  # complaints resolved after the end
        ((today - dt.timedelta(days=60)).astimezone(berlin), today.astimezone(berlin)),
        (today - dt.timedelta(hours=30), dt.datetime.now(dt.UTC)),  # no whole day... but one: and now
        (today + dt.timedelta(hours=1), today + dt.timedelta(hours=20)),  # within one day
        (today - dt.timedelta(days=5, hours=3), today - dt.timedelta(days=5, hours=1)),
    ]


async def _scopes(conn: AsyncConnection) -> list[Scope]:
    partners = (
        await conn.execute(text("SELECT DISTINCT partner_id FROM customers WHERE partner_id IS NOT NULL"))
    ).all()
    return [ALL, *[Scope(partner_id=p[0]) for p in partners[:2]]]


async def _assert_same(engine: AsyncEngine) -> int:
    """Every period and scope: the summaries' totals equal the reference's (the hours to 1e-12), and the report's
    figures (domain/economics.py) are identical."""
    compared = 0
    async with engine.begin() as conn:  # one transaction: now() is the same for both statements
        periods = await _periods(conn)
        for scope in await _scopes(conn):
            for since, until in periods:
                got = sorted(await economics_repo.tier_totals(conn, since, until, scope), key=_key)
                want = sorted(await _reference(conn, since, until, scope), key=_key)
                assert [t.tier for t in got] == [t.tier for t in want], (since, until, scope)
                for g, w in zip(got, want, strict=True):
                    assert abs(g.complaint_hours - w.complaint_hours) < HOURS_TOLERANCE, (since, until, g, w)
                    assert g.__dict__ | {"complaint_hours": 0} == w.__dict__ | {"complaint_hours": 0}, (since, until)
                for hourly, survey in ((Decimal("40"), Decimal("1.5")), (Decimal("0"), Decimal("0"))):
                    assert rules.economics(got, hourly_cost=hourly, survey_cost=survey) == rules.economics(
                        want, hourly_cost=hourly, survey_cost=survey
                    ), (since, until, scope)
                compared += 1
        # the report really reads the summaries and their deltas (else the comparisons above compared the
        # reference to itself)
        with StatementCounter(conn.engine) as read:
            await economics_repo.tier_totals(conn, periods[0][0], periods[0][1], ALL)
        assert any("economics_days" in q and "economics_day_deltas" in q for q in read.statements), read.statements
        assert not any(re.search(r"GROUP BY customer_id", q) for q in read.statements), read.statements
    return compared


def _by_key(row: tuple[Any, ...]) -> list[str]:
    """Its leading columns (the unique key of economics_days, some of them null) as text, to sort by."""
    return [str(v) for v in row[:3]]


def _folded(name: str, *, with_deltas: bool = True) -> str:
    """What the report reads of a summary table: its rows plus its deltas, summed per key, the keys whose sums
    are not all 0."""
    deltas, key, sums = SUMMARIES[name]
    cols = f"{key}, {', '.join(sums)}"
    rows = f"SELECT {cols} FROM {name}" + (f" UNION ALL SELECT {cols} FROM {deltas}" if with_deltas else "")
    return (
        f"SELECT {key}, {', '.join(f'sum({x})' for x in sums)} FROM ({rows}) s GROUP BY {key}"
        f" HAVING {' OR '.join(f'sum({x}) <> 0' for x in sums)}"
    )


async def _summed(conn: AsyncConnection, *, with_deltas: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: sorted(map(tuple, (await conn.execute(text(_folded(name, with_deltas=with_deltas)))).all()), key=_by_key)
        for name in SUMMARIES
    }


async def _pending(conn: AsyncConnection) -> int:
    """The delta rows not compacted yet."""
    return int(
        await _scalar(
            conn, "SELECT (SELECT count(*) FROM economics_day_deltas) + (SELECT count(*) FROM economics_reach_deltas)"
        )
    )


async def _assert_rebuilt_equal(engine: AsyncEngine) -> None:
    """The summaries and deltas the triggers and compactions left equal the summaries a rebuild computes from
    the data (and leaves no delta)."""
    async with engine.begin() as conn:
        before = await _summed(conn)
        await conn.execute(text("SELECT economics_summaries_rebuild()"))
        assert await _pending(conn) == 0
        after = await _summed(conn, with_deltas=False)
        await conn.rollback()
    for name in SUMMARIES:
        assert before[name] == after[name], name


async def _compact(engine: AsyncEngine) -> None:
    """Every pending delta into the summaries (nothing else runs)."""
    moved = await economics.compact(engine)
    assert moved is not None
    async with engine.connect() as conn:
        assert await _pending(conn) == 0


async def _pending_now(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await _pending(conn)


async def _compact_once(engine: AsyncEngine) -> int | None:
    return await economics.compact(engine)


def _compaction(engine: AsyncEngine, how: str) -> contextlib.AbstractAsyncContextManager[Callable[[], Awaitable[None]]]:
    """The block's writes under one of COMPACTIONS (tests/integration/compaction.py), by the compaction job's body."""
    return compaction(
        how,
        compact_all=lambda: _compact(engine),
        compact_once=lambda: _compact_once(engine),
        pending=lambda: _pending_now(engine),
    )


@pytest.mark.parametrize("compaction", COMPACTIONS)
async def test_seeded_summaries_equal_the_reference(engine: AsyncEngine, compaction: str) -> None:
    async with _compaction(engine, compaction):
        await _assert_seeded_equal(engine)


async def _assert_seeded_equal(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    """SELECT (SELECT count(*) FROM refunds), (SELECT count(*) FROM benefit_redemptions),
                              (SELECT count(*) FROM complaints WHERE resolved_at IS NULL),
                              (SELECT sum(revenue) FROM (SELECT revenue FROM economics_days
                                                         UNION ALL SELECT revenue FROM economics_day_deltas) d)"""
                )
            )
        ).one()
    # refunds, uses and open complaints to compare
    assert counts[0] > 10
    assert counts[1] > 10
    assert counts[2] > 0
    assert counts[3] > 0  # the seed went through the triggers
    await _assert_rebuilt_equal(engine)
    assert await _assert_same(engine) >= 20


async def _live(conn: AsyncConnection, n: int, offset: int = 0) -> list[UUID]:
    rows = await conn.execute(
        text(
            """SELECT c.id FROM customers c WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
               AND EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = c.id)
               AND NOT EXISTS (SELECT 1 FROM customer_merges g WHERE c.id IN (g.survivor_id, g.duplicate_id))
               ORDER BY c.id LIMIT :n OFFSET :o"""
        ),
        {"n": n, "o": offset},
    )
    return [r[0] for r in rows.all()]


@pytest.mark.parametrize("compaction", COMPACTIONS)
async def test_writes_keep_the_summaries_equal_to_the_reference(engine: AsyncEngine, compaction: str) -> None:
    async with _compaction(engine, compaction) as settle:
        async with engine.begin() as conn:
            some = await _live(conn, 20)
            # purchases (today and long ago), refunds of some, benefit uses, survey responses
            await conn.execute(
                text(
                    """INSERT INTO purchases (customer_id, partner_id, amount, currency, purchased_at)
                       SELECT c.id, c.partner_id, 12.34 + n, 'EUR', now() - n * interval '17 hours'
                       FROM customers c, generate_series(0, 3) n WHERE c.id = ANY(:ids)"""
                ),
                {"ids": some[:10]},
            )
            await conn.execute(
                text(
                    """INSERT INTO refunds (purchase_id, customer_id, partner_id, amount, reason, refunded_at, purchased_at,
                                           closes_purchase, actor)
                       SELECT p.id, p.customer_id, p.partner_id, round(p.amount / 3, 2), 'test', now(), p.purchased_at,
                              false, 'test'
                       FROM purchases p WHERE p.customer_id = ANY(:ids)
                         AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.purchase_id = p.id)"""
                ),
                {"ids": some[5:12]},
            )
            await conn.execute(
                text(
                    """INSERT INTO benefit_redemptions (benefit_id, benefit_code, policy_version, customer_id, partner_id,
                                                       tier_code, cost, redeemed_at, actor)
                       SELECT b.benefit_id, b.benefit_code, b.policy_version, c.id, c.partner_id, c.tier_code, 4.90,
                              now() - interval '3 days', 'test'
                       FROM customers c, (SELECT benefit_id, benefit_code, policy_version FROM benefit_redemptions
                                          ORDER BY id LIMIT 1) b
                       WHERE c.id = ANY(:ids)"""
                ),
                {"ids": some[:15]},
            )
            # a refund moved in time and amount, one deleted; a purchase deleted with its refunds
            await conn.execute(
                text(
                    """UPDATE refunds SET amount = amount / 2, refunded_at = refunded_at - interval '40 days'
                       WHERE id IN (SELECT id FROM refunds ORDER BY id LIMIT 6)"""
                )
            )
            await conn.execute(
                text("DELETE FROM refunds WHERE id IN (SELECT id FROM refunds ORDER BY id DESC LIMIT 3)")
            )
            await conn.execute(
                text(
                    "DELETE FROM benefit_redemptions WHERE id IN (SELECT id FROM benefit_redemptions ORDER BY id LIMIT 4)"
                )
            )
            await conn.execute(
                text(
                    """UPDATE survey_responses SET submitted_at = submitted_at - interval '3 days'
                       WHERE id IN (SELECT id FROM survey_responses ORDER BY id LIMIT 9)"""
                )
            )
        await settle()
        await _assert_rebuilt_equal(engine)
        await _assert_same(engine)

        async with engine.begin() as conn:
            # complaints: some resolved now, some paused longer, some reopened (resolved_at cleared), one moved back
            for statement in (
                """UPDATE complaints SET status = 'resolved', resolved_at = now(), paused_seconds = paused_seconds + 60
                   WHERE id IN (SELECT id FROM complaints WHERE resolved_at IS NULL ORDER BY id LIMIT 5)""",
                """UPDATE complaints SET paused_seconds = paused_seconds + 3600
                   WHERE id IN (SELECT id FROM complaints WHERE resolved_at IS NULL ORDER BY id LIMIT 4)""",
                """UPDATE complaints SET resolved_at = opened_at + interval '50 days'
                   WHERE id IN (SELECT id FROM complaints WHERE resolved_at IS NOT NULL ORDER BY id LIMIT 6)""",
                """UPDATE complaints SET status = 'open', resolved_at = NULL
                   WHERE id IN (SELECT id FROM complaints WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT 3)""",
                """UPDATE complaints SET paused_seconds = 10000000
                   WHERE id IN (SELECT id FROM complaints WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT 2)""",
            ):
                await conn.execute(text(statement))
            # tier changes of live customers (and one to no tier) move all their facts and their reach
            await conn.execute(
                text(
                    """UPDATE customers SET tier_code = CASE WHEN tier_code = 'gold' THEN 'silver' ELSE 'gold' END
                       WHERE id = ANY(:ids)"""
                ),
                {"ids": await _live(conn, 25, offset=30)},
            )
            await conn.execute(text("UPDATE customers SET tier_code = NULL WHERE id = ANY(:ids)"), {"ids": some[15:17]})
            # a customer moved to another partner
            await conn.execute(
                text(
                    """UPDATE customers SET partner_id = (SELECT partner_id FROM customers WHERE partner_id IS NOT NULL
                                                         ORDER BY id LIMIT 1)
                       WHERE id = :id"""
                ),
                {"id": some[17]},
            )
        await settle()
        await _assert_rebuilt_equal(engine)
        await _assert_same(engine)

        async with engine.begin() as conn:
            pair = (
                await conn.execute(
                    text(
                        """SELECT a.id, b.id FROM customers a JOIN customers b
                             ON b.partner_id IS NOT DISTINCT FROM a.partner_id AND b.id > a.id
                           WHERE a.id = ANY(:ids) AND b.id = ANY(:ids) ORDER BY a.id, b.id LIMIT 1"""
                    ),
                    {"ids": await _live(conn, 40, offset=60)},
                )
            ).one()
            await quality.merge(conn, pair[0], pair[1], scope=Scope(), actor="test", request_id=None)
            await quality.erase(conn, some[18], scope=Scope(), actor="test", request_id=None)
            # a hard delete by hand: the facts first (the foreign keys restrict), then the customer
            gone = some[19]
            theirs = "SELECT id FROM complaints WHERE customer_id = :c"
            for statement in (
                f"DELETE FROM complaint_events WHERE complaint_id IN ({theirs})",
                f"DELETE FROM survey_responses WHERE customer_id = :c OR complaint_id IN ({theirs})",
                f"DELETE FROM survey_invitations WHERE customer_id = :c OR complaint_id IN ({theirs})",
                f"UPDATE complaints SET follow_up_of_id = NULL WHERE follow_up_of_id IN ({theirs})",
                "DELETE FROM complaints WHERE customer_id = :c",
                "DELETE FROM refunds WHERE customer_id = :c",
                "DELETE FROM benefit_redemptions WHERE customer_id = :c",
                "DELETE FROM benefit_holdouts WHERE customer_id = :c",
                "DELETE FROM purchases WHERE customer_id = :c",
                "DELETE FROM tier_changes WHERE customer_id = :c",
                "DELETE FROM consent_events WHERE customer_id = :c",
                "DELETE FROM customers WHERE id = :c",
            ):
                await conn.execute(text(statement), {"c": gone})
        await settle()
        await _assert_rebuilt_equal(engine)
        assert await _assert_same(engine) >= 20


# ---------------------------------------------------------------- concurrency (migration 0024)

# What an ingest batch writes for a customer, on the summaries' key of today, its tier and its partner: a
# purchase, a refund of it and a use of a benefit ($1: the customer).
BATCH = (
    """INSERT INTO purchases (customer_id, partner_id, amount, currency, purchased_at)
       SELECT id, partner_id, 19.99, 'EUR', now() FROM customers WHERE id = $1""",
    """INSERT INTO refunds (purchase_id, customer_id, partner_id, amount, reason, refunded_at, purchased_at,
                           closes_purchase, actor)
       SELECT p.id, p.customer_id, p.partner_id, 5.00, 'test', now(), p.purchased_at, false, 'test'
       FROM purchases p WHERE p.customer_id = $1 ORDER BY p.created_at DESC, p.id LIMIT 1""",
    """INSERT INTO benefit_redemptions (benefit_id, benefit_code, policy_version, customer_id, partner_id,
                                       tier_code, cost, redeemed_at, actor)
       SELECT b.benefit_id, b.benefit_code, b.policy_version, c.id, c.partner_id, c.tier_code, 4.90, now(), 'test'
       FROM customers c, (SELECT benefit_id, benefit_code, policy_version FROM benefit_redemptions
                          ORDER BY id LIMIT 1) b
       WHERE c.id = $1""",
)
# Long enough for a statement that waits for no one on a loaded machine; one that waits never ends.


async def _neighbours(engine: AsyncEngine) -> tuple[UUID, UUID]:
    """Two live customers of one tier and one partner: their facts of today add to the same summary key."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    """SELECT a.id, b.id FROM customers a JOIN customers b
                         ON b.tier_code = a.tier_code AND b.partner_id = a.partner_id AND b.id > a.id
                       WHERE a.deleted_at IS NULL AND a.merged_into_id IS NULL
                         AND b.deleted_at IS NULL AND b.merged_into_id IS NULL
                       ORDER BY a.id, b.id LIMIT 1"""
                )
            )
        ).one()
    return row[0], row[1]


async def _write_batch(conn: asyncpg.Connection, customer: UUID) -> None:
    for statement in BATCH:
        await conn.execute(statement, customer)


async def _second_writer_waits(engine: AsyncEngine) -> bool:
    """Two transactions write a batch each for two customers of one tier and partner, today; the first stays
    open while the second writes (and, if it did not wait, commits). Whether the second waited for the first;
    both committed in the end."""
    a, b = await _neighbours(engine)
    async with connections(engine, 3) as (first, second, observer):
        tx = second.transaction()
        async with first.transaction():
            await _write_batch(first, a)
            await tx.start()
            writing = asyncio.create_task(_write_batch(second, b))
            waited = await blocked_by(observer, first, writing)
            if not waited:
                await tx.commit()  # before the first
        if waited:  # the first committed: the second goes on
            await asyncio.wait_for(writing, NO_WAIT_S)
            await tx.commit()
    return waited


async def test_writers_of_one_day_tier_and_partner_do_not_wait_for_each_other(engine: AsyncEngine) -> None:
    assert not await _second_writer_waits(engine)
    assert not await _second_writer_waits(engine)  # with the first pair's deltas there
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine)


async def test_a_compaction_neither_waits_for_writers_nor_makes_them_wait(engine: AsyncEngine) -> None:
    a, b = await _neighbours(engine)
    await _compact(engine)  # the seed's deltas: today's key of a and b is a summary row now
    async with connections(engine, 3) as (writer, compactor, other):
        async with writer.transaction():
            await _write_batch(writer, a)  # not committed: its deltas are not the compaction's
            async with compactor.transaction():
                moved = await asyncio.wait_for(compactor.fetchval("SELECT economics_compact()"), NO_WAIT_S)
                assert moved == 0
                # while this compaction is open (its lock held): a second one does nothing, a writer goes on
                assert await asyncio.wait_for(other.fetchval("SELECT economics_compact()"), NO_WAIT_S) is None
                await asyncio.wait_for(_write_batch(writer, b), NO_WAIT_S)
        # a's batch and b's, committed now: one delta row per statement (each adds to one key)
        assert await compactor.fetchval("SELECT economics_compact()") == 2 * len(BATCH)
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine)


async def test_a_delta_committed_while_a_compaction_runs_stays_for_the_next(engine: AsyncEngine) -> None:
    a, b = await _neighbours(engine)
    async with connections(engine, 4) as (writer, holder, compactor, observer):
        await _write_batch(writer, a)
        await _compact(engine)  # the seed's deltas and a's: today's key of a and b is a summary row now
        await _write_batch(writer, a)  # committed: the next compaction's to move
        async with holder.transaction():
            # the summary rows locked: the compaction, having taken its deltas, waits to add them
            await holder.execute("SELECT 1 FROM economics_days FOR UPDATE")
            compacting = asyncio.create_task(compactor.fetchval("SELECT economics_compact()"))
            assert await blocked_by(observer, holder, compacting)
            await asyncio.wait_for(_write_batch(writer, b), NO_WAIT_S)  # committed while it runs
        moved = await asyncio.wait_for(compacting, NO_WAIT_S)
        left = await observer.fetchval("SELECT count(*) FROM economics_day_deltas")
        assert moved > 0
        assert left > 0  # b's: taken neither by the compaction that started before it, nor lost
        async with engine.connect() as conn:
            before = await _summed(conn)
        assert await compactor.fetchval("SELECT economics_compact()") == left
        async with engine.connect() as conn:
            assert await _summed(conn) == before
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine)


async def test_the_compaction_job_moves_the_deltas_on_its_schedule(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    async with running_api(url, test_settings(economics_compact_cron="*/7 * * * *")) as api:
        jobs = api.services.jobs
        [periodic] = [p for p in jobs.periodic_registry.periodic_tasks.values() if p.periodic_id == "economics-compact"]
        assert (periodic.task.name, periodic.cron) == ("tierwise.economics_compact", "*/7 * * * *")
        async with engine.connect() as conn:
            assert await _pending(conn) > 0  # the seed's
        await jobs.configure_task("tierwise.economics_compact").defer_async(timestamp=0)
        await jobs.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False)
        async with engine.connect() as conn:
            assert await _pending(conn) == 0
            statuses = await conn.execute(
                text("SELECT DISTINCT status FROM procrastinate_jobs WHERE task_name = 'tierwise.economics_compact'")
            )
            assert statuses.scalars().all() == ["succeeded"]
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine)


# ---------------------------------------------------------------- a fact and a change of tier at once (0028)

# What a transaction writes for a customer ($1) while another changes the customer's tier: an ingest batch
# (inserts), or changes and deletions of its facts (a purchase moved a day back and up, its refunds taken out).
FACT_WRITES = {
    "inserted": BATCH,
    "changed and deleted": (
        """UPDATE purchases SET amount = amount + 1, purchased_at = purchased_at - interval '1 day'
           WHERE customer_id = $1""",
        "DELETE FROM refunds WHERE customer_id = $1",
    ),
}
RETIER = "UPDATE customers SET tier_code = CASE WHEN tier_code = 'gold' THEN 'silver' ELSE 'gold' END WHERE id = $1"


async def _refunded(engine: AsyncEngine) -> UUID:
    """A live customer with purchases, refunds and a tier, in no merge."""
    async with engine.connect() as conn:
        return await _scalar(
            conn,
            """SELECT c.id FROM customers c WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
                   AND c.tier_code IS NOT NULL AND EXISTS (SELECT 1 FROM refunds r WHERE r.customer_id = c.id)
                   AND NOT EXISTS (SELECT 1 FROM customer_merges g WHERE c.id IN (g.survivor_id, g.duplicate_id))
                   ORDER BY c.id LIMIT 1""",
        )


async def _race(engine: AsyncEngine, first: str, writes: Sequence[str]) -> bool:
    """Transaction A writes ``writes`` for a customer while transaction B changes its tier; ``first`` ("fact" or
    "tier") writes and stays open while the other one writes. If the other did not wait, it commits before the
    first (the interleaving that lost the fact's move under 0024); else the first commits and the other goes
    on. Whether the second waited for the first; both committed in the end."""
    customer = await _refunded(engine)

    async def write_facts(conn: asyncpg.Connection) -> None:
        for statement in writes:
            await conn.execute(statement, customer)

    async def retier(conn: asyncpg.Connection) -> None:
        await conn.execute(RETIER, customer)

    steps = (write_facts, retier) if first == "fact" else (retier, write_facts)
    async with connections(engine, 3) as (holder, other, observer):
        second = other.transaction()
        async with holder.transaction():
            await steps[0](holder)
            await second.start()
            writing = asyncio.create_task(steps[1](other))
            waited = await blocked_by(observer, holder, writing)
            if not waited:
                await second.commit()  # before the first
        if waited:  # the first committed: the second goes on
            await asyncio.wait_for(writing, NO_WAIT_S)
            await second.commit()
    return waited


@pytest.mark.parametrize("writes", FACT_WRITES)
@pytest.mark.parametrize("first", ["fact", "tier"])
async def test_a_fact_written_while_its_customer_changes_tier_counts_under_the_new_tier(
    engine: AsyncEngine, first: str, writes: str
) -> None:
    """Fact first: the tier change waits for the fact's commit, then its trigger (a new snapshot per statement)
    sees the fact and moves it. Tier first: the fact's trigger waits for the tier change's commit, then appends
    under the new tier (its append is a statement of its own, with a new snapshot)."""
    assert await _race(engine, first, FACT_WRITES[writes])
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine)


async def test_writers_of_two_customers_in_opposite_orders_deadlock_and_one_is_cancelled(engine: AsyncEngine) -> None:
    """The limit of the customers' locks: a transaction writing facts of C1 then of C2 while another writes C2's
    then C1's deadlocks; PostgreSQL cancels one (after deadlock_timeout), the other commits, and the summaries
    stay equal to the data."""
    one, two = await _neighbours(engine)
    async with connections(engine, 3) as (left, right, observer):
        left_tx, right_tx = left.transaction(), right.transaction()
        await left_tx.start()
        await right_tx.start()
        await _write_batch(left, one)
        await _write_batch(right, two)
        crossing = asyncio.create_task(_write_batch(left, two))
        assert await blocked_by(observer, right, crossing)
        try:
            await asyncio.wait_for(_write_batch(right, one), NO_WAIT_S)
        except asyncpg.exceptions.DeadlockDetectedError:
            cancelled, survivor, pending = right_tx, left_tx, crossing
        else:
            with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
                await asyncio.wait_for(crossing, NO_WAIT_S)
            cancelled, survivor, pending = left_tx, right_tx, None
        await cancelled.rollback()
        if pending is not None:
            await asyncio.wait_for(pending, NO_WAIT_S)
        await survivor.commit()
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine)


# ---------------------------------------------------------------- the migration


def _sources(sql: str) -> dict[str, str]:
    """The bodies of the functions an SQL script creates, without whitespace, by name."""
    found = re.finditer(r"CREATE (?:OR REPLACE )?FUNCTION (\w+)\(\).*?AS \$\$(.*?)\$\$", sql, re.DOTALL)
    return {m[1]: re.sub(r"\s+", "", m[2]) for m in found}


async def test_migration_0024_downgrades_to_0023_and_upgrades(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    await _compact(engine)
    async with engine.begin() as conn:  # summaries and pending deltas both
        await conn.execute(
            text(
                """INSERT INTO purchases (customer_id, partner_id, amount, currency, purchased_at)
                   SELECT id, partner_id, 7.5, 'EUR', now() - interval '2 days' FROM customers
                   WHERE deleted_at IS NULL ORDER BY id LIMIT 50"""
            )
        )
        summed = await _summed(conn)
        assert await _pending(conn) > 0
    await engine.dispose()  # no cached plan of a dropped table

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0023")
    async with engine.begin() as conn:
        assert await _summed(conn, with_deltas=False) == summed  # the deltas folded in
        left = "SELECT count(*) FROM pg_class WHERE relname IN ('economics_day_deltas', 'economics_reach_deltas')"
        assert await _scalar(conn, left) == 0
        assert await _scalar(conn, "SELECT count(*) FROM pg_proc WHERE proname = 'economics_compact'") == 0
        functions = await conn.execute(text("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'economics%'"))
        got = {r[0]: re.sub(r"\s+", "", r[1]) for r in functions.all()}
    frozen = importlib.import_module("infra.migrations.versions.0023_economics_summaries")  # it never changes
    assert got == _sources(frozen.UPGRADE)  # 0023's functions, as 0023 wrote them
    async with engine.begin() as conn:
        await conn.execute(text("SELECT economics_summaries_rebuild()"))
        assert await _summed(conn, with_deltas=False) == summed
    assert await _second_writer_waits(engine)  # what 0024 is for

    await engine.dispose()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    assert not await _second_writer_waits(engine)
    await _assert_rebuilt_equal(engine)
    await _assert_same(engine)
    await _compact(engine)
    await _assert_same(engine)


async def _drifted(engine: AsyncEngine) -> bool:
    """Whether the summaries and deltas differ from what a rebuild computes from the data (then rebuilt)."""
    try:
        await _assert_rebuilt_equal(engine)
    except AssertionError:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT economics_summaries_rebuild()"))
        return True
    return False


async def test_migration_0028_downgrades_to_0027_and_upgrades(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    await engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0027")
    facts = [f"economics_{t}_changed" for t in ("purchases", "refunds", "benefit_redemptions", "complaints")]
    facts.append("economics_survey_responses_changed")
    async with engine.connect() as conn:
        functions = await conn.execute(
            text("SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(:names)"), {"names": facts}
        )
        got = {r[0]: re.sub(r"\s+", "", r[1]) for r in functions.all()}
    frozen = _sources(importlib.import_module("infra.migrations.versions.0024_economics_deltas").UPGRADE)
    assert got == {name: frozen[name] for name in facts}  # 0024's fact functions, as 0024 wrote them
    # the race under 0024: neither waits, and the facts stay under the tier their customer left
    for first in ("fact", "tier"):
        for writes in FACT_WRITES.values():
            assert not await _race(engine, first, writes)
            assert await _drifted(engine), (first, writes)

    await engine.dispose()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    for first in ("fact", "tier"):
        assert await _race(engine, first, BATCH)
        assert not await _drifted(engine), first
    await _assert_same(engine)
