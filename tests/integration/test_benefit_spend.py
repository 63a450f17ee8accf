"""The daily benefit spending budget warnings read (migration 0025) equals the uses it sums — per UTC day, benefit
and tier at the use — on seeded data and after inserts, changes (cost, day, tier) and deletes of uses, with its
deltas pending, compacted after each write, and rebuilt; the spending of a budget period is read for several
periods in one statement, exactly at the calendar bounds; two writers of one benefit, tier and day do not wait
for each other; the compaction job moves the deltas; the migration fills the table from the uses already there
and goes down and up again."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from demo.seed import seed
from infra import economics
from infra.db import StatementCounter, create_engine
from infra.migrate import alembic_config
from infra.repos import benefits as benefits_repo
from tests.conftest import test_settings

FreshUrl = Callable[[], Awaitable[str]]
Key = tuple[dt.date, str, str]

# What the table must hold: the uses summed per UTC day, benefit and tier at the use.
REFERENCE = """SELECT (redeemed_at AT TIME ZONE 'UTC')::date AS day, benefit_code, tier_code, sum(cost), count(*)
               FROM benefit_redemptions GROUP BY 1, 2, 3"""
HELD = """SELECT day, benefit_code, tier, sum(cost), sum(uses) FROM (
              SELECT day, benefit_code, tier, cost, uses FROM benefit_spend_days
              UNION ALL SELECT day, benefit_code, tier, cost, uses FROM benefit_spend_deltas) s
          GROUP BY 1, 2, 3 HAVING sum(cost) <> 0 OR sum(uses) <> 0"""
NO_WAIT_S = 10.0


@pytest.fixture
async def engine(fresh_database_url: FreshUrl) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await fresh_database_url(), test_settings())
    try:
        await seed(engine, 300, seed=25, progress=False)
        yield engine
    finally:
        await engine.dispose()


async def _sums(conn: AsyncConnection, sql: str) -> dict[Key, tuple[Decimal, int]]:
    return {(r[0], r[1], r[2]): (Decimal(r[3]), int(r[4])) for r in (await conn.execute(text(sql))).all()}


async def _pending(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT count(*) FROM benefit_spend_deltas"))).scalar_one())


async def _assert_equal(engine: AsyncEngine) -> dict[Key, tuple[Decimal, int]]:
    async with engine.connect() as conn:
        expected = await _sums(conn, REFERENCE)
        assert await _sums(conn, HELD) == expected
    return expected


async def _compact(engine: AsyncEngine) -> None:
    assert await economics.compact(engine) is not None
    async with engine.connect() as conn:
        assert await _pending(conn) == 0
        # compacted: the days alone hold it, one row per key (a key whose uses were all taken back stays, at 0)
        days = "SELECT day, benefit_code, tier, cost, uses FROM benefit_spend_days WHERE cost <> 0 OR uses <> 0"
        assert await _sums(conn, days) == await _sums(conn, REFERENCE)


async def _a_use(conn: AsyncConnection) -> dict[str, Any]:
    row = (
        await conn.execute(
            text(
                "SELECT r.benefit_id, r.benefit_code, r.policy_version, c.id AS customer_id, c.partner_id,"
                " c.tier_code FROM benefit_redemptions r JOIN customers c ON c.id = r.customer_id"
                " WHERE c.tier_code IS NOT NULL ORDER BY r.id LIMIT 1"
            )
        )
    ).one()
    return dict(row._mapping)


INSERT = """INSERT INTO benefit_redemptions (benefit_id, benefit_code, policy_version, customer_id, partner_id,
                                             tier_code, cost, redeemed_at, actor)
            SELECT :benefit_id, :benefit_code, :policy_version, :customer_id, :partner_id, :tier_code,
                   :cost, :at, 'test'
            FROM generate_series(1, :n)"""


async def test_seeded_spending_equals_the_uses(engine: AsyncEngine) -> None:
    expected = await _assert_equal(engine)
    assert len(expected) > 10  # the seed's uses spread over days, benefits and tiers
    async with engine.connect() as conn:
        assert await _pending(conn) > 0  # the seed's uses went through the triggers
    await _compact(engine)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT benefit_spend_rebuild()"))
        assert await _pending(conn) == 0
    await _assert_equal(engine)


@pytest.mark.parametrize("compaction", ["none", "after each write"])
async def test_writes_keep_the_spending_equal_to_the_uses(engine: AsyncEngine, compaction: str) -> None:
    async with engine.connect() as conn:
        use = await _a_use(conn)
    now = dt.datetime.now(dt.UTC)
    writes = [
        (INSERT, {**use, "cost": Decimal("4.90"), "at": now, "n": 3}),
        (INSERT, {**use, "cost": Decimal("12.00"), "at": now - dt.timedelta(days=40), "n": 2}),
        # a use's cost corrected, one moved to another day, one to another tier, some taken back
        (
            "UPDATE benefit_redemptions SET cost = cost + 1 WHERE id = (SELECT min(id::text)::uuid FROM"
            " benefit_redemptions WHERE actor = 'test')",
            {},
        ),
        (
            "UPDATE benefit_redemptions SET redeemed_at = redeemed_at - interval '3 days' WHERE id = (SELECT"
            " max(id::text)::uuid FROM benefit_redemptions WHERE actor = 'test')",
            {},
        ),
        (
            "UPDATE benefit_redemptions SET tier_code = 'platinum' WHERE id IN (SELECT id FROM benefit_redemptions"
            " WHERE actor = 'test' ORDER BY id LIMIT 2)",
            {},
        ),
        (
            "DELETE FROM benefit_redemptions WHERE id IN (SELECT id FROM benefit_redemptions ORDER BY id DESC LIMIT 5)",
            {},
        ),
        ("DELETE FROM benefit_redemptions WHERE actor = 'test'", {}),
    ]
    for sql, params in writes:
        async with engine.begin() as conn:
            assert (await conn.execute(text(sql), params)).rowcount > 0, sql
        await _assert_equal(engine)
        if compaction == "after each write":
            await _compact(engine)
            await _assert_equal(engine)


async def test_spending_of_budget_periods_in_one_statement(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        use = await _a_use(conn)
        code, tier = use["benefit_code"], use["tier_code"]
        await conn.execute(text("DELETE FROM benefit_redemptions"))
        at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        for when, cost, n, as_tier in (
            (at - dt.timedelta(microseconds=1), "100.00", 1, tier),  # the last instant of February
            (at, "4.90", 2, tier),  # the first of March
            (dt.datetime(2026, 3, 31, 23, 59, 59, tzinfo=dt.UTC), "1.00", 3, tier),
            (dt.datetime(2026, 4, 1, tzinfo=dt.UTC), "7.00", 1, tier),  # April
            (dt.datetime(2026, 3, 15, tzinfo=dt.UTC), "50.00", 1, "someone else's tier"),
        ):
            await conn.execute(text(INSERT), {**use, "tier_code": as_tier, "cost": Decimal(cost), "at": when, "n": n})
    march = (code, tier, dt.date(2026, 3, 1), dt.date(2026, 4, 1))
    quarter = (code, tier, dt.date(2026, 1, 1), dt.date(2026, 4, 1))
    other = ("no such benefit", tier, dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    expected = {march: Decimal("12.80"), quarter: Decimal("112.80"), other: Decimal(0)}
    for _ in ("pending", "compacted"):
        async with engine.connect() as conn:
            counter = StatementCounter(engine)
            with counter:
                assert await benefits_repo.spent(conn, [march, quarter, other, march]) == expected
            assert counter.count == 1
        await _compact(engine)
    async with engine.connect() as conn:
        assert await benefits_repo.spent(conn, []) == {}


async def test_writers_of_one_benefit_tier_and_day_do_not_wait_for_each_other(engine: AsyncEngine) -> None:
    await _compact(engine)  # today's key is a row of benefit_spend_days now
    async with engine.connect() as conn:
        use = await _a_use(conn)
        # a use of another customer charged under the same tier (writers of one customer's facts wait for
        # each other since migration 0028: they lock it, for its economics summaries)
        other = (
            await conn.execute(
                text("SELECT id, partner_id FROM customers WHERE id <> :id AND deleted_at IS NULL ORDER BY id LIMIT 1"),
                {"id": use["customer_id"]},
            )
        ).one()
    url = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
    sql = """INSERT INTO benefit_redemptions (benefit_id, benefit_code, policy_version, customer_id, partner_id,
                                               tier_code, cost, redeemed_at, actor)
             VALUES ($1, $2, $3, $4, $5, $6, 4.90, now(), 'test')"""
    args = [use[k] for k in ("benefit_id", "benefit_code", "policy_version", "customer_id", "partner_id", "tier_code")]
    others = [*args[:3], other.id, other.partner_id, args[5]]
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        async with first.transaction():
            await first.execute(sql, *args)
            async with second.transaction():  # while the first is open: it must not wait for it
                await asyncio.wait_for(second.execute(sql, *others), NO_WAIT_S)
            compacted = await asyncio.wait_for(second.fetchval("SELECT benefit_spend_compact()"), NO_WAIT_S)
            assert compacted == 1  # the second's delta; the first's is not committed
    finally:
        await first.close()
        await second.close()
    await _assert_equal(engine)
    await _compact(engine)


async def test_the_compaction_job_compacts_the_spending(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await _pending(conn) > 0
    moved = await economics.compact(engine)
    assert moved is not None
    assert moved > 0
    async with engine.connect() as conn:
        assert await _pending(conn) == 0
    await _assert_equal(engine)


async def test_migration_0025_fills_from_the_uses_and_goes_down_and_up(engine: AsyncEngine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    expected = await _assert_equal(engine)
    await engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0024")
    async with engine.connect() as conn:
        tables = "SELECT count(*) FROM pg_class WHERE relname LIKE 'benefit_spend%'"
        assert (await conn.execute(text(tables))).scalar_one() == 0
        functions = "SELECT count(*) FROM pg_proc WHERE proname LIKE 'benefit_spend%'"
        assert (await conn.execute(text(functions))).scalar_one() == 0
    async with engine.begin() as conn:  # uses written meanwhile, with no trigger to see them
        use = await _a_use(conn)
        await conn.execute(text(INSERT), {**use, "cost": Decimal("3.30"), "at": dt.datetime.now(dt.UTC), "n": 4})
    await engine.dispose()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    after = await _assert_equal(engine)
    async with engine.connect() as conn:
        assert await _pending(conn) == 0  # filled straight into the days
    today = (dt.datetime.now(dt.UTC).date(), use["benefit_code"], use["tier_code"])
    cost, uses = expected.get(today, (Decimal(0), 0))
    assert after[today] == (cost + Decimal("13.20"), uses + 4)
