"""Leased token buckets (issue 12): instances lease slices of a caller's budget from the shared bucket
in PostgreSQL and spend them without a round trip per request. The bound they keep
(api/edge/ratelimit.py, docs/sec-edge.md): over any window of w seconds all instances together admit
at most L + r·(w + T) points (L a minute, r = L/60 a second, T the lease period), and a caller is
refused early by at most the slices other instances hold. Two app instances over one database; the
limiter's accounting directly, and over HTTP with real tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.edge.ratelimit import RateLimiter
from authz.principal import Principal, PrincipalKind
from infra.db import RequestDb, create_engine
from tests.api.test_rate_limits import VIEWER, assert_limited, post
from tests.conftest import running_api, test_settings

ALICE = Principal(PrincipalKind.USER, "alice")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, test_settings())
    yield engine
    await engine.dispose()


def limiter(**overrides: Any) -> RateLimiter:
    return RateLimiter(test_settings(**overrides))


async def charge(engine: AsyncEngine, instance: RateLimiter, cost: int) -> bool:
    db = RequestDb(engine.connect)
    try:
        return (await instance.charge(db, ALICE, cost)).allowed
    finally:
        await db.close()


async def bucket_holds(engine: AsyncEngine, per_minute: int) -> float:
    """What alice's bucket holds now, refill included."""
    async with engine.connect() as conn:
        return float(
            (
                await conn.execute(
                    text(
                        "SELECT least(CAST(:l AS float8), points + extract(epoch FROM now() - at) * CAST(:l AS float8) / 60.0) "
                        "FROM rate_limit_buckets WHERE key = 'user:alice'"
                    ),
                    {"l": per_minute},
                )
            ).scalar_one()
        )


async def test_two_instances_under_load_admit_no_more_than_the_bound(engine: AsyncEngine) -> None:
    settings = {"rate_limit_user_per_minute": 600, "rate_limit_lease_fraction": 0.05, "rate_limit_lease_s": 0.2}
    one, two = limiter(**settings), limiter(**settings)  # two instances: a slice is 30 points
    admitted = {"one": 0, "two": 0}
    started = time.monotonic()

    async def worker(name: str, instance: RateLimiter) -> None:
        while await charge(engine, instance, 3):  # until this worker is refused
            admitted[name] += 3

    await asyncio.gather(*(worker(n, i) for n, i in (("one", one), ("two", two)) for _ in range(6)))
    elapsed = time.monotonic() - started
    total = admitted["one"] + admitted["two"]
    # L + r·(w + T): 600 a minute is 10 points a second
    assert total <= 600 + 10 * (elapsed + 0.2) + 1, (total, elapsed)
    # ...and both instances got their share of it, refused only once the bucket was spent
    assert total >= 600 - 2 * 30, (total, elapsed)
    assert admitted["one"] > 0
    assert admitted["two"] > 0
    # a statement per slice of 30 (and one per refusal: 12 workers), not per operation
    assert one.round_trips + two.round_trips <= total // 30 + 2 + 12, (one.round_trips, two.round_trips, total)


async def test_a_slice_is_spent_without_sql_then_expires_and_goes_back(engine: AsyncEngine) -> None:
    one = limiter(rate_limit_user_per_minute=600, rate_limit_lease_fraction=0.05, rate_limit_lease_s=0.3)
    assert await charge(engine, one, 1)  # leases 1 + 30
    assert one.round_trips == 1
    for _ in range(10):
        assert await charge(engine, one, 2)
    assert one.round_trips == 1  # twenty points from the slice, no statement
    holds = await bucket_holds(engine, 600)
    assert 569 <= holds <= 575, holds  # 600 - 31, and the refill of the last moments
    await asyncio.sleep(0.35)
    assert await charge(engine, one, 1)  # the slice expired: its 10 points are not spent, a new lease is taken
    assert one.round_trips == 2
    before = await bucket_holds(engine, 600)
    started = time.monotonic()
    assert await one.give_back(engine) == 1  # the expired slice's 10 points go back
    after = await bucket_holds(engine, 600)
    assert 10 <= after - before <= 10 + 10 * (time.monotonic() - started) + 1, (before, after)


async def test_a_restarted_instance_starts_without_the_dead_ones_slice(engine: AsyncEngine) -> None:
    settings = {"rate_limit_user_per_minute": 600, "rate_limit_lease_fraction": 0.05, "rate_limit_lease_s": 60}
    dead = limiter(**settings)
    assert await charge(engine, dead, 1)  # it leased 31 points, then died without giving any back
    del dead
    restarted = limiter(**settings)
    db = RequestDb(engine.connect)
    try:
        refused = await restarted.charge(db, ALICE, 600)  # the whole budget: 31 points are missing
    finally:
        await db.close()
    assert not refused.allowed
    assert 1 <= refused.retry_after_s <= 3.2, refused  # the refill brings them back, 10 a second
    await asyncio.sleep(refused.retry_after_s + 0.1)
    assert await charge(engine, restarted, 600)


async def test_a_stopped_instance_gives_its_slice_back(database_url: str) -> None:
    settings = test_settings(rate_limit_user_per_minute=120, rate_limit_lease_fraction=0.25, rate_limit_lease_s=60)
    async with running_api(database_url, settings) as one:
        alice = await one.user("alice", "admin")
        response = await post(one, alice)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining"] == "119"  # the bucket's 89 and the slice's 30
        engine = create_engine(database_url, test_settings())
        try:
            assert await bucket_holds(engine, 120) < 91  # 120 - 31 (and a little refill)
        finally:
            await engine.dispose()
    # shut down: its slice went back
    engine = create_engine(database_url, test_settings())
    try:
        assert await bucket_holds(engine, 120) >= 119
    finally:
        await engine.dispose()


async def test_two_app_instances_share_one_budget_over_http(database_url: str) -> None:
    settings = {"rate_limit_user_per_minute": 120, "rate_limit_lease_fraction": 0.1, "rate_limit_lease_s": 30}
    async with (
        running_api(database_url, test_settings(**settings)) as one,
        running_api(database_url, test_settings(**settings)) as two,
    ):
        alice = await one.user("alice", "admin")
        await two.services.authz.reload()
        started = time.monotonic()
        ok = {"one": 0, "two": 0}
        refused: set[str] = set()
        while len(refused) < 2 and sum(ok.values()) < 400:
            for name, api in (("one", one), ("two", two)):
                if name in refused:
                    continue
                response = await post(api, alice, VIEWER)  # one point
                if response.status_code == 200:
                    ok[name] += 1
                else:
                    assert_limited(response)
                    refused.add(name)
        elapsed = time.monotonic() - started
        total = ok["one"] + ok["two"]
        assert 120 - 2 <= total <= 120 + 2 * elapsed + 1, (ok, elapsed)  # 2 points come back a second
        assert ok["one"] > 12  # each spent more than one slice of 12
        assert ok["two"] > 12
        limiters = [api.services.limiter for api in (one, two)]
        assert all(lim is not None for lim in limiters)
        trips = sum(lim.round_trips for lim in limiters if lim is not None)
        assert trips <= total // 12 + 6, (trips, total)  # a statement per slice of 12 (and the refusals)
