"""Batch writes run again when PostgreSQL cancels them to break a deadlock (infra.db.retrying).

Since migration 0028 a fact statement locks the customers it writes, in id order; a transaction that locks the
same customers in another order (a hand-written UPDATE, a re-tier batch) can deadlock with it, and PostgreSQL
cancels one of the two. Here the batch is made the one cancelled: another transaction holds the second of its
two customers, the batch locks the first and waits, then the other asks for the first (its own deadlock check
set far later, so the batch's check finds the cycle). The batch, being idempotent, runs again once the other
has committed, and succeeds: both purchases written once, the caller sees no error. Other errors are not run
again (tests/unit: is_retryable)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from sqlalchemy import text

from infra.db import is_retryable
from tests.api.helpers import RECORD_PURCHASES, create_customer, raw_id
from tests.conftest import Api


async def _blocked(observer: asyncpg.Connection, holder: asyncpg.Connection) -> bool:
    return bool(
        await observer.fetchval(
            "SELECT bool_or($1 = ANY(pg_blocking_pids(pid))) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
            holder.get_server_pid(),
        )
    )


async def test_a_batch_cancelled_to_break_a_deadlock_runs_again(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    admin = await api.user("alice", "admin")
    made = [await create_customer(api, admin, name=f"Dead Lock {n}") for n in range(2)]
    first, second = sorted(made, key=lambda c: raw_id(c["id"]))  # the order the batch's trigger locks them in
    url = api.url.replace("+asyncpg", "")
    holder, observer = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await holder.execute("SET deadlock_timeout = '30s'")  # the batch's backend finds the deadlock first
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE", raw_id(second["id"]))
        items = [{"customerId": c["id"], "amount": "10.00", "externalId": f"deadlock-{n}"} for n, c in enumerate(made)]
        caplog.set_level(logging.INFO, logger="tierwise.db")
        batch = asyncio.create_task(api.gql(admin, RECORD_PURCHASES, {"input": {"purchases": items}}))
        for _ in range(500):  # the batch holds the first customer and waits for the second
            if await _blocked(observer, holder):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the batch never waited for the holder")
        # the holder now asks for the first: a cycle; PostgreSQL cancels the batch's transaction
        await asyncio.wait_for(
            holder.execute("SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE", raw_id(first["id"])), 20
        )
        await tx.commit()  # the batch's second attempt goes on
        body = await asyncio.wait_for(batch, 20)
    finally:
        await holder.close()
        await observer.close()
    assert "errors" not in body, body
    assert body["data"]["recordPurchases"]["insertedCount"] == 2
    assert body["data"]["recordPurchases"]["userErrors"] == []
    retried = [r for r in caplog.records if "running it again" in r.getMessage()]
    assert len(retried) == 1, [r.getMessage() for r in caplog.records]
    assert "attempt 1 of 3" in retried[0].getMessage()
    async with api.services.engine.connect() as conn:
        n = (
            await conn.execute(text("SELECT count(*) FROM purchases WHERE external_id LIKE 'deadlock-%'"))
        ).scalar_one()
    assert n == 2  # written once


class _Coded(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_only_deadlocks_and_serialization_failures_are_retryable() -> None:
    assert is_retryable(_Coded("40P01"))
    assert is_retryable(_Coded("40001"))
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = _Coded("40P01")
    assert is_retryable(wrapped)
    assert not is_retryable(_Coded("23505"))  # a unique violation: the same again would fail again
    assert not is_retryable(_Coded("57014"))  # a statement timeout
    assert not is_retryable(ValueError("no sqlstate"))
    assert not is_retryable(None)
