"""Rate limits per partner token and per staff user, in cost points per minute.

Each operation is charged its estimated cost (at least one point) against the caller's bucket in
PostgreSQL (``infra/repos/ratelimit.py``: one atomic statement on the request's own connection), so
every instance shares the same budget. A refused caller is remembered locally until its bucket holds
a point again, for at most a second: until then its requests are refused at the edge, without
parsing or SQL (a bucket only fills with time; the second bounds how long another instance takes to
see an admin's new limit).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Result
from sqlalchemy.sql import Executable

from api.edge.observability import Metrics
from authz.principal import Principal, PrincipalKind
from infra.db import RequestDb
from infra.repos import ratelimit as repo
from infra.settings import Settings

_MAX_REMEMBERED = 10_000
_REMEMBER_AT_MOST_S = 1.0


class _Autocommit:
    """The request's connection, committing the charge by itself in one round trip."""

    def __init__(self, db: RequestDb) -> None:
        self._db = db

    async def execute(self, statement: Executable, params: Any = None) -> Result[Any]:
        return await self._db.execute_autocommit(statement, params)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float

    @property
    def retry_after_header(self) -> str:
        return repo.retry_after_header(self.retry_after_s)


class RateLimiter:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._blocked_until: dict[str, float] = {}

    @staticmethod
    def key(principal: Principal) -> str:
        return principal.subject

    def default_limit(self, principal: Principal) -> int:
        if principal.kind is PrincipalKind.TOKEN:
            return self.settings.rate_limit_partner_per_minute
        return self.settings.rate_limit_user_per_minute

    def blocked_for(self, principal: Principal) -> float:
        """Seconds until ``principal`` may try again, if this instance knows its bucket is empty."""
        until = self._blocked_until.get(self.key(principal))
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            self._blocked_until.pop(self.key(principal), None)
            return 0.0
        return left

    def forget(self, key: str) -> None:
        """Drop what this instance remembers of ``key`` (after an admin changed its limit)."""
        self._blocked_until.pop(key, None)

    async def charge(self, db: RequestDb, principal: Principal, cost: int) -> Decision:
        token_id = UUID(principal.id) if principal.kind is PrincipalKind.TOKEN else None
        started = time.perf_counter()
        result = await repo.charge(
            _Autocommit(db),
            key=self.key(principal),
            cost=cost,
            default_limit=self.default_limit(principal),
            token_id=token_id,
        )
        if self.metrics is not None:
            self.metrics.rate_limit_check.observe(time.perf_counter() - started)
            if not result.allowed:
                self.metrics.rate_limited.labels(principal.kind.value).inc()
        if not result.allowed:
            self._remember(self.key(principal), result.empty_for_s)
        return Decision(result.allowed, result.limit, result.remaining, result.retry_after_s)

    async def penalize(self, db: RequestDb, principal: Principal, cost: int) -> Decision:
        """Charge a refused document: ``cost`` points, or whatever the bucket holds if less. Not
        allowed when the bucket held less than ``cost``; an emptied bucket is remembered here, so the
        next requests are refused at the edge (429) without parsing or SQL."""
        token_id = UUID(principal.id) if principal.kind is PrincipalKind.TOKEN else None
        result = await repo.penalize(
            _Autocommit(db),
            key=self.key(principal),
            cost=cost,
            default_limit=self.default_limit(principal),
            token_id=token_id,
        )
        if not result.allowed and self.metrics is not None:
            self.metrics.rate_limited.labels(principal.kind.value).inc()
        if result.empty_for_s > 0:
            self._remember(self.key(principal), result.empty_for_s)
        return Decision(result.allowed, result.limit, result.remaining, result.retry_after_s)

    def _remember(self, key: str, seconds: float) -> None:
        now = time.monotonic()
        if len(self._blocked_until) >= _MAX_REMEMBERED:
            self._blocked_until = {k: v for k, v in self._blocked_until.items() if v > now}
        if seconds > 0 and len(self._blocked_until) < _MAX_REMEMBERED:
            self._blocked_until[key] = now + min(seconds, _REMEMBER_AT_MOST_S)


class AuthFailures:
    """Failed authentications per client address, counted in this process only (a guess costs the
    attacker a request and us no query): after ``limit`` failures within ``window_s`` seconds the
    address is refused (429, Retry-After) until its oldest counted failure leaves the window, before
    any token is looked up. Success does not reset the count (a valid token must not let forged ones
    through). At most ``_MAX_REMEMBERED`` addresses are kept; beyond it the stalest are dropped."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def blocked_for(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: it may now)."""
        times = self._failures.get(address)
        if times is None:
            return 0.0
        now = time.monotonic()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, address: str) -> None:
        times = self._failures.get(address)
        if times is None:
            if len(self._failures) >= _MAX_REMEMBERED:
                self._evict()
            times = self._failures[address] = deque(maxlen=self.limit)
        times.append(time.monotonic())

    def _evict(self) -> None:
        cutoff = time.monotonic() - self.window_s
        self._failures = {a: t for a, t in self._failures.items() if t and t[-1] > cutoff}
        while len(self._failures) >= _MAX_REMEMBERED:  # all recent: drop the stalest
            stalest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[stalest]
