"""The running instance's view of the policy: a ``PolicyStore`` snapshot, replaced when the
policy version moves. Changes arrive through ``LISTEN tierwise_policy`` (within a second on every
instance) with a periodic version check as a safety net if the listening connection drops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from authz.policy import PolicyStore, Rule
from infra.repos import authz as authz_repo

log = logging.getLogger("tierwise.authz")


class AuthzService:
    def __init__(self, engine: AsyncEngine, *, poll_interval_s: float = 5.0) -> None:
        self._engine = engine
        self._poll_interval_s = poll_interval_s
        self._store: PolicyStore | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._listen_conn: Any = None

    @property
    def store(self) -> PolicyStore:
        if self._store is None:
            raise RuntimeError("authorization policy not loaded yet")
        return self._store

    async def reload(self, *, if_newer_than: int | None = None) -> PolicyStore:
        async with self._reload_lock:
            async with self._engine.connect() as conn:
                if if_newer_than is not None and self._store is not None:
                    current = await authz_repo.policy_version(conn)
                    if current <= self._store.version:
                        return self._store
                version, rules = await authz_repo.load_rules(conn)
            store = await asyncio.to_thread(PolicyStore, version, [Rule(p, v) for p, v in rules])
            self._store = store
            log.info("policy version %s loaded (%s rules)", version, len(rules))
            return store

    async def start(self) -> None:
        await self.reload()
        await self._listen()
        self._tasks.append(asyncio.create_task(self._poll(), name="authz-poll"))

    async def _listen(self) -> None:
        """A dedicated connection outside the pool: it is held for the life of the instance."""
        with contextlib.suppress(Exception):
            url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._listen_conn = await asyncpg.connect(url, timeout=5)
            await self._listen_conn.add_listener(authz_repo.POLICY_CHANNEL, self._on_notify)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            version = int(payload)
        except ValueError:
            version = None
        if version is not None and self._store is not None and version <= self._store.version:
            return
        self._tasks.append(asyncio.create_task(self._safe_reload(), name="authz-reload"))
        self._tasks = [t for t in self._tasks if not t.done()]

    async def _safe_reload(self) -> None:
        try:
            await self.reload(if_newer_than=self._store.version if self._store else None)
        except Exception:
            log.exception("policy reload failed")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            if self._listen_conn is None or self._listen_conn.is_closed():
                self._listen_conn = None
                await self._listen()
            await self._safe_reload()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await self._listen_conn.remove_listener(authz_repo.POLICY_CHANNEL, self._on_notify)
            with contextlib.suppress(Exception):
                await self._listen_conn.close(timeout=2)
            self._listen_conn = None
