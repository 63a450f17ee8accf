"""The running instance's view of the policy: a ``PolicyStore`` snapshot, replaced when the
policy version moves. Changes arrive through ``LISTEN tierwise_policy`` (within a second on every
instance) with a periodic version check as a safety net if the listening connection drops
(infra/listener.py)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from authz.policy import PolicyStore, Rule
from infra.listener import VersionListener
from infra.repos import authz as authz_repo

log = logging.getLogger("tierwise.authz")


class AuthzService:
    def __init__(self, engine: AsyncEngine, *, poll_interval_s: float = 5.0) -> None:
        self._engine = engine
        self._store: PolicyStore | None = None
        self._reload_lock = asyncio.Lock()
        self._listener = VersionListener(
            engine,
            authz_repo.POLICY_CHANNEL,
            self._reload_if_newer,
            is_current=self._is_current,
            poll_interval_s=poll_interval_s,
            name="authz",
        )

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
        await self._listener.start()

    def _is_current(self, payload: str) -> bool:
        try:
            version = int(payload)
        except ValueError:
            return False
        return self._store is not None and version <= self._store.version

    async def _reload_if_newer(self) -> None:
        await self.reload(if_newer_than=self._store.version if self._store else None)

    async def stop(self) -> None:
        await self._listener.stop()
