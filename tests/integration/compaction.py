"""The three ways the summary tests (economics, migration 0024; report summaries, 0027; benefit spending, 0025)
run their writes against the compaction of the triggers' deltas: never compacted, compacted after each write,
or compacted over and over while the writes, comparisons and rebuilds run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

COMPACTIONS = ("none", "after each write", "concurrent")


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
