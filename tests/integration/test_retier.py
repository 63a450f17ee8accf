"""The tier engine's SQL on real PostgreSQL: hysteresis (grace, minimum stay, no flapping) on the incremental
path, the same decision as domain.tiers.decide for every kind of customer, and the batched full re-tier that
resumes where it stopped. Time passing is simulated by moving timestamps back with SQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import tiers as rules
from infra import tiering
from infra.after_change import after_change
from infra.repos import tiers as tiers_repo
from tests.api.helpers import create_customer, record_purchases, snapshot
from tests.conftest import Api

ALWAYS = {"always": True}


def spend(op: str, value: float) -> dict[str, Any]:
    return {"metric": "spend_12m", "op": op, "value": value}


SIMPLE = rules.PolicySpec(
    "Spend only",
    [
        rules.TierSpec("bronze", "Bronze", 0, ALWAYS, ALWAYS),
        rules.TierSpec("silver", "Silver", 1, {"all": [spend(">=", 500)]}, {"all": [spend(">=", 400)]}),
        rules.TierSpec("gold", "Gold", 2, {"all": [spend(">=", 2000)]}, {"all": [spend(">=", 1600)]}),
    ],
    grace_days=30,
    min_stay_days=60,
)


async def activate(engine: AsyncEngine, spec: rules.PolicySpec) -> rules.PolicySpec:
    async with engine.begin() as conn:
        policy_id = await tiers_repo.create_draft(conn, spec, description=None, actor="test")
        await tiers_repo.activate(conn, policy_id, spec, expected_revision=None, actor="test")
        loaded = await tiering.load_policy(conn)
        assert loaded is not None
        await tiering.full_retier_inline(conn, actor="test")
    return loaded


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def refresh(engine: AsyncEngine, customer_id: UUID) -> None:
    async with engine.begin() as conn:
        await after_change(conn, [customer_id], actor="test")


async def history(engine: AsyncEngine, customer_id: UUID) -> list[tuple[str | None, str, str]]:
    rows = await sql(
        engine,
        "SELECT from_tier, to_tier, change_type FROM tier_changes WHERE customer_id = :id ORDER BY id",
        id=customer_id,
    )
    return [(r.from_tier, r.to_tier, r.change_type) for r in rows]


async def new_customer(api: Api, token: str, *amounts: str) -> UUID:
    from tests.api.helpers import raw_id

    gid = (await create_customer(api, token, name="Cy"))["id"]
    if amounts:
        await record_purchases(api, token, *[{"customerId": gid, "amount": a} for a in amounts])
    return raw_id(gid)


# ---------------------------------------------------------------- hysteresis


async def test_grace_and_minimum_stay_hold_a_downgrade_back(api: Api) -> None:
    engine = api.services.engine
    admin = await api.user("alice", "admin")
    await activate(engine, SIMPLE)
    cid = await new_customer(api, admin, "1000.00", "1500.00")
    assert await history(engine, cid) == [(None, "bronze", "initial"), ("bronze", "gold", "upgrade")]

    # 1000 of the 2500 fall out of the spend window: 1500 fails gold's retain rule (1600): grace starts.
    await sql(engine, "UPDATE purchases SET purchased_at = now() - interval '400 days' WHERE amount = 1000")
    await refresh(engine, cid)
    [row] = await sql(engine, "SELECT tier_code, tier_grace_since FROM customers")
    assert row.tier_code == "gold"
    assert row.tier_grace_since is not None
    await refresh(engine, cid)  # still failing, grace running: nothing new
    assert (await history(engine, cid))[-1] == ("gold", "gold", "grace")
    assert len(await history(engine, cid)) == 3

    # Grace over (31 days), but the customer entered gold 40 days ago: the minimum stay is 60 days.
    await sql(
        engine,
        "UPDATE customers SET tier_grace_since = now() - interval '31 days', tier_since = now() - interval '40 days'",
    )
    await refresh(engine, cid)
    assert await sql(engine, "SELECT tier_code FROM customers") == [("gold",)]

    await sql(engine, "UPDATE customers SET tier_since = now() - interval '61 days'")
    await refresh(engine, cid)
    [row] = await sql(
        engine, "SELECT tier_code, tier_grace_since, tier_since > now() - interval '1 minute' AS fresh FROM customers"
    )
    assert (row.tier_code, row.tier_grace_since, row.fresh) == ("silver", None, True)  # 1500 keeps silver
    changes = await sql(
        engine, "SELECT change_type, reason, metrics FROM tier_changes WHERE customer_id = :id ORDER BY id", id=cid
    )
    assert changes[-1].change_type == "downgrade"
    assert "grace of 30 days and minimum stay of 60 days over" in changes[-1].reason
    assert Decimal(str(changes[-1].metrics["spend_12m"])) == Decimal("1500")


async def test_grace_ends_when_the_retain_rule_holds_again(api: Api) -> None:
    engine = api.services.engine
    admin = await api.user("alice", "admin")
    await activate(engine, SIMPLE)
    cid = await new_customer(api, admin, "300.00", "300.00")
    await sql(
        engine,
        "UPDATE purchases SET purchased_at = now() - interval '400 days' WHERE ctid = "
        "(SELECT min(ctid) FROM purchases)",
    )
    await refresh(engine, cid)  # 300 left: silver's retain (400) fails
    await record_purchases(api, admin, {"customerId": str(_gid(cid)), "amount": "150.00"})  # 450: holds again
    assert await sql(engine, "SELECT tier_code, tier_grace_since FROM customers") == [("silver", None)]
    reasons = await sql(engine, "SELECT reason FROM tier_changes WHERE change_type = 'grace' ORDER BY id")
    assert [r.reason.split(":")[0] for r in reasons] == [
        "retain rule of silver fails",
        "retain rule of silver holds again",
    ]


def _gid(raw: UUID) -> str:
    from tests.api.helpers import global_id

    return global_id("Customer", raw)


async def test_no_flapping_when_spend_oscillates_around_thresholds(api: Api) -> None:
    """Forty events move spend across silver's entry threshold (499 / 501) and then across its retain threshold
    (399 / 401): one upgrade, no downgrade, and the tier never leaves silver."""
    engine = api.services.engine
    admin = await api.user("alice", "admin")
    await activate(engine, SIMPLE)
    cid = await new_customer(api, admin, "499.00")
    gid = _gid(cid)
    for n in range(20):  # entry threshold: +2 in, then the 2 age out
        if n % 2 == 0:
            await record_purchases(api, admin, {"customerId": gid, "amount": "2.00"})
        else:
            await sql(
                engine,
                "UPDATE purchases SET purchased_at = now() - interval '400 days' WHERE amount = 2"
                " AND purchased_at > now() - interval '1 day'",
            )
            await refresh(engine, cid)
    await sql(engine, "UPDATE purchases SET amount = 399 WHERE amount = 499")
    for n in range(20):  # retain threshold
        if n % 2 == 0:
            await record_purchases(api, admin, {"customerId": gid, "amount": "2.00"})
        else:
            await sql(
                engine,
                "UPDATE purchases SET purchased_at = now() - interval '400 days' WHERE amount = 2"
                " AND purchased_at > now() - interval '1 day'",
            )
            await refresh(engine, cid)
    moves = [h for h in await history(engine, cid) if h[2] != "grace"]
    assert moves == [(None, "bronze", "initial"), ("bronze", "silver", "upgrade")]
    assert await sql(engine, "SELECT tier_code FROM customers") == [("silver",)]


# ---------------------------------------------------------------- SQL and Python decide alike


async def test_the_sql_decision_is_the_domain_decision(api: Api) -> None:
    """Random tiers, grace and stay timestamps, overrides and metrics for 300 customers: one set-based re-tier
    puts each exactly where domain.tiers.decide says, and writes the history rows it implies."""
    engine = api.services.engine
    policy = await activate(engine, SIMPLE)
    rnd = random.Random(4)
    await sql(
        engine,
        "INSERT INTO customers (name, created_at) SELECT 'c' || g, now() - interval '500 days'"
        " FROM generate_series(1, 300) g",
    )
    ids = [r.id for r in await sql(engine, "SELECT id FROM customers ORDER BY id")]
    now = (await sql(engine, "SELECT now()"))[0][0]
    cases: dict[UUID, tuple[rules.TierState, float]] = {}
    for cid in ids:
        tier = rnd.choice([None, "bronze", "silver", "gold", "platinum"])
        grace = rnd.choice([None, 1, 29, 31, 90])
        since = rnd.choice([1, 59, 61, 400])
        override = rnd.random() < 0.1
        value = rnd.choice([0, 399, 400, 450, 499, 500, 1599, 1600, 1999, 2000, 3000])
        state = rules.TierState(
            tier,
            since=now - dt.timedelta(days=since),
            grace_since=None if grace is None else now - dt.timedelta(days=grace),
            override_tier="gold" if override else None,
            override_expires_at=(now + dt.timedelta(days=rnd.choice([-1, 1]))) if override else None,
        )
        cases[cid] = (state, value)
        await sql(
            engine,
            "UPDATE customers SET tier_code = :tier, tier_since = :since, tier_grace_since = :grace,"
            " tier_override_code = :ov, tier_override_expires_at = :exp WHERE id = :id",
            tier=tier,
            since=state.since,
            grace=state.grace_since,
            ov=state.override_tier,
            exp=state.override_expires_at,
            id=cid,
        )
        await sql(engine, "INSERT INTO customer_metrics (customer_id, spend_12m) VALUES (:id, :v)", id=cid, v=value)
    before = {
        r.customer_id: r.n for r in await sql(engine, "SELECT customer_id, count(*) AS n FROM tier_changes GROUP BY 1")
    }
    async with engine.begin() as conn:  # the same transaction time as `now` above is not needed: days apart
        await tiering.retier(conn, None, actor="test")
    after = {
        r.id: r for r in await sql(engine, "SELECT id, tier_code, tier_grace_since, tier_override_code FROM customers")
    }
    written = {
        r.customer_id: r.n for r in await sql(engine, "SELECT customer_id, count(*) AS n FROM tier_changes GROUP BY 1")
    }
    kinds = set()
    for cid, (state, value) in cases.items():
        d = rules.decide(policy, state, {"spend_12m": value}, now)
        kinds.add(d.kind)
        got = after[cid]
        assert got.tier_code == d.tier, (state, value, d)
        assert (got.tier_grace_since is None) == (d.grace_since is None), (state, value, d)
        override_cleared = state.override_tier is None or d.kind == "replace"
        assert (got.tier_override_code is None) == override_cleared, (state, d)
        assert written.get(cid, 0) - before.get(cid, 0) == (1 if d.change_type else 0), (state, value, d)
    assert kinds == {"override", "replace", "place", "up", "keep", "recover", "grace", "wait", "down"}


# ---------------------------------------------------------------- full re-tier


async def test_an_interrupted_full_retier_resumes_and_ends_like_one_run(api: Api) -> None:
    engine = api.services.engine
    admin = await api.user("alice", "admin")
    for n in range(3):
        await new_customer(api, admin, f"{300 * n + 100}.00")
    await sql(
        engine,
        "INSERT INTO customers (name) SELECT 'bulk ' || g FROM generate_series(1, 57) g",
    )
    await sql(
        engine,
        "INSERT INTO purchases (customer_id, amount, currency, purchased_at)"
        " SELECT id, (abs(hashtext(id::text)) % 3000) + 1, 'EUR', now() - interval '3 days' FROM customers"
        " WHERE name LIKE 'bulk%'",
    )
    await sql(engine, "CREATE TABLE start_state AS SELECT * FROM customers")
    start_changes = (await sql(engine, "SELECT max(id) FROM tier_changes"))[0][0]

    seen: list[int] = []
    first = await tiering.run_full_retier(
        engine, actor="test", batch_size=10, max_batches=2, on_progress=lambda p: seen.append(p.done)
    )
    assert first is not None
    assert not first.finished
    assert (first.batches, first.done, first.total) == (2, 20, 60)
    [run] = await sql(engine, "SELECT status, batches, customers_done, after_id FROM tier_runs")
    assert (run.status, run.batches, run.customers_done) == ("running", 2, 20)

    resumed = await tiering.run_full_retier(engine, actor="test", batch_size=99)  # the run's batch size wins
    assert resumed is not None
    assert resumed.finished
    assert (resumed.run_id, resumed.resumed_from, resumed.done, resumed.batches) == (first.run_id, 20, 60, 6)
    assert seen == [10, 20]
    interrupted = await _outcome(engine, start_changes)

    # The same start, in one run.
    await sql(engine, f"DELETE FROM tier_changes WHERE id > {start_changes}")
    await sql(
        engine,
        "UPDATE customers c SET tier_code = s.tier_code, tier_since = s.tier_since, tier_grace_since ="
        " s.tier_grace_since, tier_policy_version = s.tier_policy_version FROM start_state s WHERE s.id = c.id",
    )
    await sql(engine, "DELETE FROM customer_metrics")
    once = await tiering.run_full_retier(engine, actor="test", batch_size=1000)
    assert once is not None
    assert (once.finished, once.batches, once.resumed_from) == (True, 1, 0)
    assert await _outcome(engine, start_changes) == interrupted
    assert [r.status for r in await sql(engine, "SELECT status FROM tier_runs ORDER BY id")] == ["done", "done"]
    assert interrupted["changes"] >= 57  # every bulk customer placed for the first time


async def _outcome(engine: AsyncEngine, after_change: int) -> dict[str, Any]:
    tiers = await sql(engine, "SELECT id, tier_code FROM customers ORDER BY id")
    changes = await sql(
        engine,
        f"SELECT customer_id, from_tier, to_tier, change_type FROM tier_changes WHERE id > {after_change}"
        " ORDER BY customer_id, id",
    )
    metrics = await sql(engine, "SELECT customer_id, spend_12m, orders_12m FROM customer_metrics ORDER BY 1")
    return {"tiers": tiers, "history": changes, "changes": len(changes), "metrics": metrics}


async def test_one_full_retier_at_a_time_and_a_new_policy_supersedes_a_stopped_run(api: Api) -> None:
    engine = api.services.engine
    await sql(engine, "INSERT INTO customers (name) SELECT 'n' || g FROM generate_series(1, 30) g")
    stopped = await tiering.run_full_retier(engine, actor="test", batch_size=10, max_batches=1)
    assert stopped is not None

    async with engine.connect() as holder:  # someone else holds the lock
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": tiering._LOCK_KEY})
        with pytest.raises(tiering.RetierBusy):
            await tiering.run_full_retier(engine, actor="test")
        await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": tiering._LOCK_KEY})
        await holder.commit()

    await activate(engine, SIMPLE)
    fresh = await tiering.run_full_retier(engine, actor="test", batch_size=10)
    assert fresh is not None
    assert fresh.run_id != stopped.run_id
    assert (fresh.resumed_from, fresh.done, fresh.batches) == (0, 30, 3)
    statuses = await sql(engine, "SELECT status, policy_version FROM tier_runs ORDER BY id")
    assert [r.status for r in statuses] == ["superseded", "done"]


async def test_simulation_of_another_spend_window_reads_purchases_and_writes_nothing(api: Api) -> None:
    engine = api.services.engine
    admin = await api.user("alice", "admin")
    await new_customer(api, admin, "600.00")
    await sql(engine, "UPDATE purchases SET purchased_at = now() - interval '100 days'")
    await sql(engine, "UPDATE customer_metrics SET computed_at = computed_at")  # nothing else moves
    short = rules.PolicySpec("Short window", SIMPLE.tiers, spend_window_days=90, version=99)
    before = await snapshot(api)
    async with engine.connect() as conn:
        sim = await tiering.simulate(conn, short)
        same = await tiering.simulate(conn, rules.PolicySpec("Year", SIMPLE.tiers, version=98))
    assert await snapshot(api) == before
    assert [(c.from_tier, c.to_tier, c.customers) for c in sim.now] == [("silver", "silver", 1)]  # retained
    assert [(c.from_tier, c.to_tier) for c in sim.eventual] == [("silver", "bronze")]  # 0 spent in 90 days
    assert [(c.from_tier, c.to_tier) for c in same.eventual] == [("silver", "silver")]
    await asyncio.sleep(0)
