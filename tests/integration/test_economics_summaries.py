"""The economics report from its summaries (migration 0023) equals the statement it replaced — summing each fact
table per customer and joining every live customer, kept here as the reference — on seeded data with refunds
and benefit uses, for whole and partial days, open complaints and complaints resolved after the period, staff
and partner scopes; and stays equal after writes of every kind (purchases, refunds, benefit uses, complaints
opened, paused and resolved, survey responses, tier changes, a merge, an erasure, a hard delete), with the
triggers leaving the summaries exactly as a rebuild from the data would."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from demo.seed import seed
from domain import economics as rules
from infra.db import StatementCounter, create_engine
from infra.repos import economics as economics_repo
from infra.repos import quality
from infra.repos import scope as readable
from infra.repos.base import ALL, Scope
from tests.conftest import test_settings

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
SUMMARY_TABLES = {
    "economics_days": (
        "day, tier, partner_id, revenue, refunds, benefit_cost, benefit_uses, complaints, complaint_seconds, responses",
        "revenue <> 0 OR refunds <> 0 OR benefit_cost <> 0 OR benefit_uses <> 0 OR complaints <> 0"
        " OR complaint_seconds <> 0 OR responses <> 0",
    ),
    "economics_reach": ("tier, partner_id, customers", "customers <> 0"),
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
        # the report really reads the summaries (else the comparisons above compared the reference to itself)
        with StatementCounter(conn.engine) as read:
            await economics_repo.tier_totals(conn, periods[0][0], periods[0][1], ALL)
        assert any("economics_days" in q for q in read.statements), read.statements
        assert not any(re.search(r"GROUP BY customer_id", q) for q in read.statements), read.statements
    return compared


def _by_key(row: tuple[Any, ...]) -> list[str]:
    """Its leading columns (the unique key of economics_days, some of them null) as text, to sort by."""
    return [str(v) for v in row[:3]]


async def _assert_rebuilt_equal(engine: AsyncEngine) -> None:
    """The summaries the triggers kept equal those a rebuild computes from the data."""
    async with engine.begin() as conn:
        before = {
            name: sorted(
                map(tuple, (await conn.execute(text(f"SELECT {cols} FROM {name} WHERE {live}"))).all()), key=_by_key
            )
            for name, (cols, live) in SUMMARY_TABLES.items()
        }
        await conn.execute(text("SELECT economics_summaries_rebuild()"))
        after = {
            name: sorted(map(tuple, (await conn.execute(text(f"SELECT {cols} FROM {name}"))).all()), key=_by_key)
            for name, (cols, _) in SUMMARY_TABLES.items()
        }
        await conn.rollback()
    for name in SUMMARY_TABLES:
        assert before[name] == after[name], name


async def test_seeded_summaries_equal_the_reference(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    """SELECT (SELECT count(*) FROM refunds), (SELECT count(*) FROM benefit_redemptions),
                              (SELECT count(*) FROM complaints WHERE resolved_at IS NULL),
                              (SELECT sum(revenue) FROM economics_days)"""
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


async def test_writes_keep_the_summaries_equal_to_the_reference(engine: AsyncEngine) -> None:
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
        await conn.execute(text("DELETE FROM refunds WHERE id IN (SELECT id FROM refunds ORDER BY id DESC LIMIT 3)"))
        await conn.execute(
            text("DELETE FROM benefit_redemptions WHERE id IN (SELECT id FROM benefit_redemptions ORDER BY id LIMIT 4)")
        )
        await conn.execute(
            text(
                """UPDATE survey_responses SET submitted_at = submitted_at - interval '3 days'
                   WHERE id IN (SELECT id FROM survey_responses ORDER BY id LIMIT 9)"""
            )
        )
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
    await _assert_rebuilt_equal(engine)
    assert await _assert_same(engine) >= 20
