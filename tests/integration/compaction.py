"""What the summary tests (economics, migrations 0024 and 0028; report summaries, 0027; benefit spending, 0025)
share: the three ways they run their writes against the compaction of the triggers' deltas (never compacted,
compacted after each write, or compacted over and over while the writes, comparisons and rebuilds run), and
connections of their own to show whether one transaction waits for another."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

COMPACTIONS = ("none", "after each write", "concurrent")

NO_WAIT_S = 10.0  # how long a statement that should not wait for another transaction may take


def driver_url(engine: AsyncEngine) -> str:
    """The engine's database as a plain asyncpg URL (for connections of their own)."""
    return engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")


@contextlib.asynccontextmanager
async def connections(engine: AsyncEngine, n: int) -> AsyncIterator[list[asyncpg.Connection]]:
    """``n`` asyncpg connections of their own to the engine's database, closed after the block."""
    conns = [await asyncpg.connect(driver_url(engine)) for _ in range(n)]
    try:
        yield conns
    finally:
        for c in conns:
            await c.close()


async def blocked_by(observer: asyncpg.Connection, holder: asyncpg.Connection, task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` (statements on a connection of its own) waits for a lock ``holder``'s transaction holds
    (then it is still running), or finishes without (it is awaited)."""
    holder_pid = holder.get_server_pid()
    deadline = asyncio.get_running_loop().time() + NO_WAIT_S
    while not task.done():
        blocked = await observer.fetchval(
            "SELECT bool_or($1 = ANY(pg_blocking_pids(pid))) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
            holder_pid,
        )
        if blocked:
            return True
        assert asyncio.get_running_loop().time() < deadline, "neither done nor waiting for the holder"
        await asyncio.sleep(0.02)
    await task
    return False


@contextlib.asynccontextmanager
async def compacting(compact_once: Callable[[], Awaitable[int | None]]) -> AsyncIterator[list[int]]:
    """``compact_once`` (one compaction in a transaction of its own: delta rows moved, None when another held
    its lock) one run after another while the block runs: the rows each run moved."""
    moved: list[int] = []
    stop = asyncio.Event()

    async def compact_until_stopped() -> None:
        while not stop.is_set():
            n = await compact_once()
            if n is not None:  # None: a rebuild held the lock
                moved.append(n)
            await asyncio.sleep(0.002)

    task = asyncio.create_task(compact_until_stopped())
    try:
        yield moved
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def compaction(
    how: str,
    *,
    compact_all: Callable[[], Awaitable[None]],
    compact_once: Callable[[], Awaitable[int | None]],
    pending: Callable[[], Awaitable[int]],
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """The block's writes under one of COMPACTIONS; it calls the function yielded after each write (then
    compared): "none" leaves every delta pending (and checks some are), "after each write" compacts them all
    (``compact_all``), "concurrent" compacts all along (and checks it moved some)."""

    async def settle() -> None:
        if how == "after each write":
            await compact_all()
        elif how == "none":
            assert await pending() > 0

    if how != "concurrent":
        await settle()  # the seed's deltas
        yield settle
        return
    async with compacting(compact_once) as moved:
        yield settle
    assert sum(moved) > 0, moved
