"""infra/listener.py: a NOTIFY sent on one connection makes another instance's listener reload; a
listener whose connection was dropped still catches up by polling, and listens again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db import create_engine
from infra.listener import VersionListener
from tests.conftest import test_settings

CHANNEL = "tierwise_listener_test"


class Copy:
    """An instance's in-memory copy of a version kept in a table, as the policy store keeps its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.version = 0
        self.reloads = 0

    async def reload(self) -> None:
        async with self.engine.connect() as conn:
            version = (await conn.execute(text("SELECT v FROM listener_version"))).scalar_one()
        # both at once, after the connection is back in the pool (its release awaits): a test waiting for the
        # version must find the reload counted
        self.version = version
        self.reloads += 1

    def is_current(self, payload: str) -> bool:
        return payload.isdigit() and int(payload) <= self.version


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, test_settings())
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE listener_version (v int NOT NULL)"))
        await conn.execute(text("INSERT INTO listener_version VALUES (1)"))
    yield engine
    await engine.dispose()


async def bump(engine: AsyncEngine, *, notify: bool = True) -> int:
    async with engine.begin() as conn:
        version = (await conn.execute(text("UPDATE listener_version SET v = v + 1 RETURNING v"))).scalar_one()
        if notify:
            await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": str(version)})
    return int(version)


async def eventually(condition: object, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_notify_reloads_the_other_instances_copy(engine: AsyncEngine, database_url: str) -> None:
    other_engine = create_engine(database_url, test_settings())  # another instance: its own engine
    copy = Copy(other_engine)
    await copy.reload()
    listener = VersionListener(
        other_engine, CHANNEL, copy.reload, is_current=copy.is_current, poll_interval_s=60, name="test"
    )
    await listener.start()
    try:
        assert listener.listening
        reloads = copy.reloads
        version = await bump(engine)  # the notify goes out on this instance's connection, at commit
        await eventually(lambda: copy.version == version)
        assert copy.reloads == reloads + 1
        # a payload naming a version the copy already has reloads nothing
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": str(version)})
            await conn.commit()
        await asyncio.sleep(0.3)
        assert copy.reloads == reloads + 1
    finally:
        await listener.stop()
        await other_engine.dispose()
    assert not listener.listening


async def test_a_dropped_connection_is_caught_up_by_polling_then_listens_again(engine: AsyncEngine) -> None:
    copy = Copy(engine)
    await copy.reload()
    listener = VersionListener(engine, CHANNEL, copy.reload, is_current=copy.is_current, poll_interval_s=0.3)
    await listener.start()
    try:
        assert listener.listening
        async with engine.begin() as conn:  # the server drops the listening connection
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        await eventually(lambda: not listener.listening)
        version = await bump(engine)  # its notify is lost: nobody listens
        await eventually(lambda: copy.version == version)  # the poll reloads all the same
        await eventually(lambda: listener.listening)  # and listens again
        # notifications reach it again, faster than a poll
        listener.poll_interval_s = 60
        await asyncio.sleep(0.4)  # let a poll sleep with the new interval
        version = await bump(engine)
        await eventually(lambda: copy.version == version, seconds=2)
    finally:
        await listener.stop()


async def test_notifications_during_a_reload_queue_one_more_not_one_each(engine: AsyncEngine) -> None:
    copy = Copy(engine)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_reload() -> None:
        started.set()
        await release.wait()
        await copy.reload()

    listener = VersionListener(engine, CHANNEL, slow_reload, poll_interval_s=60)
    await listener.start()
    try:
        version = await bump(engine)
        await started.wait()
        for _ in range(5):
            await bump(engine)  # five notifications while the first reload waits
        await asyncio.sleep(0.3)
        release.set()
        await eventually(lambda: copy.version == version + 5)
        await asyncio.sleep(0.2)
        assert copy.reloads == 2  # the first, and one more for all that came during it
    finally:
        await listener.stop()
