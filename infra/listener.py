"""Keep an in-memory copy in step with PostgreSQL across instances: ``LISTEN`` on a channel, reload
when a notification says the version moved, and poll behind it.

One ``VersionListener`` per copy (the policy in authz/service.py, the trusted documents in
api/edge/documents.py). It holds a dedicated connection outside the pool for the life of the
instance; every ``poll_interval_s`` it re-opens that connection if it dropped and calls ``reload``
anyway, so a notification lost with a dropped connection costs at most one poll interval.

``is_current(payload)`` says whether a notification's payload names a version this instance already
has (then nothing is reloaded); ``reload()`` must be safe to call at any time and cheap when nothing
changed (a version check first). Reloads never overlap: a notification during a reload queues one
more reload after it, not one per notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("tierwise.listener")


class VersionListener:
    def __init__(
        self,
        engine: AsyncEngine,
        channel: str,
        reload: Callable[[], Awaitable[None]],
        *,
        is_current: Callable[[str], bool] = lambda _payload: False,
        poll_interval_s: float = 5.0,
        name: str | None = None,
    ) -> None:
        self._engine = engine
        self.channel = channel
        self._reload = reload
        self._is_current = is_current
        self.poll_interval_s = poll_interval_s
        self.name = name or channel
        self._conn: Any = None
        self._poll_task: asyncio.Task[None] | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._again = False

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is open (else changes arrive by polling only)."""
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        await self._listen()
        self._poll_task = asyncio.create_task(self._poll(), name=f"{self.name}-poll")

    async def _listen(self) -> None:
        try:
            url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = await asyncpg.connect(url, timeout=5)
            await conn.add_listener(self.channel, self._on_notify)
        except Exception as exc:  # the poll tries again; until then changes arrive by polling
            log.warning("%s: could not listen on %s (%s); polling", self.name, self.channel, type(exc).__name__)
            return
        self._conn = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._is_current(payload):
            return
        self.schedule_reload()

    def schedule_reload(self) -> None:
        """Reload soon, once: while a reload runs, at most one more is queued behind it."""
        if self._reload_task is not None and not self._reload_task.done():
            self._again = True
            return
        self._reload_task = asyncio.create_task(self._reload_loop(), name=f"{self.name}-reload")

    async def _reload_loop(self) -> None:
        while True:
            self._again = False
            await self._safe_reload()
            if not self._again:
                return

    async def _safe_reload(self) -> None:
        try:
            await self._reload()
        except Exception:
            log.exception("%s: reload failed", self.name)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            if not self.listening:
                await self._close_conn()
                await self._listen()
            await self._safe_reload()

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.remove_listener(self.channel, self._on_notify)
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)

    async def stop(self) -> None:
        for task in (self._poll_task, self._reload_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._poll_task = self._reload_task = None
        await self._close_conn()
