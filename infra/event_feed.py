"""The committed events as they happen, for the GraphQL subscriptions of this instance.

Every committed event is announced on ``LISTEN tierwise_events`` (the outbox trigger of migration 0016
notifies in the event's transaction; PostgreSQL delivers at commit, to every instance). One dedicated
connection per instance listens and fans each event out to the subscribers' queues. The feed is live,
not durable: an event committed while the connection is down (it is re-opened within
``poll_interval_s``) is not replayed here; webhooks (infra/webhooks.py) are the durable way out.

A subscriber that falls ``queue_size`` events behind is dropped (its iterator ends): a slow client
never holds memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from infra.repos.events import CHANNEL

log = logging.getLogger("tierwise.events")

_CLOSED: dict[str, Any] = {}  # the sentinel that ends a dropped subscriber's iterator


class Subscription:
    """One subscriber's queue of events (dicts: id, type, partnerId, data, occurredAt)."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.dropped = False

    def offer(self, event: dict[str, Any]) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(_CLOSED)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            event = await self.queue.get()
            if event is _CLOSED:
                return
            yield event


class EventFeed:
    def __init__(self, database_url: str, *, poll_interval_s: float = 5.0, queue_size: int = 1000) -> None:
        self._url = database_url
        self._poll_interval_s = poll_interval_s
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._watch(), name="events-listen")

    async def _listen(self) -> None:
        """A dedicated connection outside the pool, held for the life of the instance."""
        try:
            self._conn = await asyncpg.connect(self._url, timeout=5)
            await self._conn.add_listener(CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            self._conn = None
            log.warning("cannot listen for events (%s); retrying", type(exc).__name__)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            if not self.listening:
                await self._listen()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("an event notification that is not JSON was ignored")
            return
        for subscriber in list(self._subscribers):
            subscriber.offer(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscriber = Subscription(self._queue_size)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    async def stop(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(_CLOSED)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
