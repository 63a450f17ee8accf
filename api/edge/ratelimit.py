"""Rate limits per partner token and per staff user, in cost points per minute, shared by every
instance without a database round trip per request: leased token buckets.

The budget of each caller is one token bucket in PostgreSQL (``infra/repos/ratelimit.py``). An
instance that has to charge an operation and holds too few points for it leases from the bucket, in
one atomic statement on the request's own connection: the operation's cost and a slice of the budget
on top (``rate_limit_lease_fraction`` of the per-minute limit, or what the bucket holds if less). It
spends the slice locally, without SQL, for at most ``rate_limit_lease_s`` seconds; what is left after
that goes back to the bucket (a background task, and at shutdown). One lease is asked for at a time
per caller and instance: concurrent requests wait for it instead of each leasing a slice.

The bound (docs/sec-edge.md, tested in tests/api/test_rate_limits.py): for a caller allowed ``L``
points a minute (``r = L/60`` a second), over any window of ``w`` seconds all instances together
admit at most ``L + r·(w + T)`` points, ``T`` being ``rate_limit_lease_s``: the single bucket's
``L + r·w`` and at most one lease period's refill more, however many instances there are (a point
is spent at most ``T`` after the bucket handed it out). The other way, a caller can be refused while
other instances hold unspent slices: at most ``(instances - 1) · fraction · L`` points, for at most
``T``. A slice below one point (small limits, or a fraction of 0) means no slice: every operation is
charged in PostgreSQL, exactly. An instance that dies loses its slice; the bucket refills it at the
usual rate. An admin's new limit applies at once where the caller holds no slice and within ``T``
where it does.

A refused caller is remembered locally until its bucket holds a point again, for at most a second:
until then its requests are refused at the edge, without parsing or SQL (a bucket only fills with
time; the second bounds how long another instance takes to see an admin's new limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from api.edge.observability import Metrics
from authz.principal import Principal, PrincipalKind
from infra.db import RequestDb
from infra.repos import ratelimit as repo
from infra.settings import Settings

log = logging.getLogger("tierwise.ratelimit")

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


@dataclass
class _Lease:
    """What this instance holds of one caller's budget."""

    points: float = 0.0  # spendable here until ``expires``
    expires: float = 0.0  # time.monotonic()
    limit: int = 0  # the caller's points per minute, as of the last lease
    bucket_left: float = 0.0  # what the bucket held right after the last lease (for X-RateLimit-Remaining)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def usable(self, now: float) -> float:
        return self.points if now < self.expires else 0.0


class RateLimiter:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.lease_fraction = settings.rate_limit_lease_fraction
        self.lease_s = settings.rate_limit_lease_s
        self._blocked_until: dict[str, float] = {}
        self._leases: dict[str, _Lease] = {}
        self._engine: AsyncEngine | None = None
        self._task: asyncio.Task[None] | None = None
        self._stale: list[tuple[str, float, int]] = []  # expired slices' points, to give back
        self.round_trips = 0  # lease statements sent (the rest were charged locally)

    @staticmethod
    def key(principal: Principal) -> str:
        return principal.subject

    def default_limit(self, principal: Principal) -> int:
        if principal.kind is PrincipalKind.TOKEN:
            return self.settings.rate_limit_partner_per_minute
        return self.settings.rate_limit_user_per_minute

    # ------------------------------------------------------------ lifecycle

    async def start(self, engine: AsyncEngine) -> None:
        """Give back expired slices every ``lease_s`` seconds (on a pool connection)."""
        self._engine = engine
        self._task = asyncio.create_task(self._give_back_loop(), name="ratelimit-give-back")

    async def stop(self) -> None:
        """Stop the background task and give back every unspent slice."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._engine is not None:
            try:
                await self.give_back(self._engine, everything=True)
            except Exception as exc:
                log.warning("could not give back rate-limit leases at shutdown (%s)", type(exc).__name__)

    async def _give_back_loop(self) -> None:
        assert self._engine is not None
        while True:
            await asyncio.sleep(max(self.lease_s, 0.05))
            try:
                await self.give_back(self._engine)
            except Exception as exc:
                log.warning("could not give back rate-limit leases (%s)", type(exc).__name__)

    async def give_back(self, engine: AsyncEngine, *, everything: bool = False) -> int:
        """Return the unspent points of expired slices (all slices with ``everything``) to their
        buckets in one statement; forget callers that hold nothing. Returns how many slices."""
        now = time.monotonic()
        returns, self._stale = self._stale, []
        idle: list[str] = []
        for key, lease in self._leases.items():
            if lease.lock.locked():
                continue
            if everything or now >= lease.expires:
                if lease.points > 0:
                    returns.append((key, lease.points, lease.limit))
                lease.points, lease.expires = 0.0, 0.0
                idle.append(key)
        for key in idle:
            self._leases.pop(key, None)
        if returns:
            async with engine.begin() as conn:
                await repo.give_back(conn, returns)
        return len(returns)

    # ------------------------------------------------------------ the edge's memory of refusals

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
        """Drop what this instance remembers of ``key`` (after an admin changed its limit): its
        refusal and its slice (the bucket starts over full under the new limit)."""
        self._blocked_until.pop(key, None)
        self._leases.pop(key, None)

    # ------------------------------------------------------------ charging

    def _lease_of(self, key: str) -> _Lease:
        lease = self._leases.get(key)
        if lease is None:
            if len(self._leases) >= _MAX_REMEMBERED:
                now = time.monotonic()  # expired slices are dropped unreturned: the bucket refills them
                self._leases = {k: v for k, v in self._leases.items() if v.expires > now or v.lock.locked()}
            lease = self._leases[key] = _Lease()
        return lease

    async def charge(self, db: RequestDb, principal: Principal, cost: int) -> Decision:
        """Take ``cost`` points (at least one) of ``principal``'s budget: from this instance's slice
        when it holds them, else by a lease from the bucket (one statement)."""
        cost = max(cost, 1)
        key = self.key(principal)
        lease = self._leases.get(key)
        if lease is not None and not lease.lock.locked():
            decision = self._spend(lease, cost, time.monotonic())
            if decision is not None:
                return decision
        lease = self._lease_of(key)
        async with lease.lock:  # one lease at a time per caller; the others wait and spend from it
            now = time.monotonic()
            decision = self._spend(lease, cost, now)
            if decision is not None:
                return decision
            held = self._held(key, lease, now)
            started = time.perf_counter()
            result = await repo.lease(
                _Autocommit(db),
                key=key,
                need=cost - held,
                fraction=self.lease_fraction,
                default_limit=self.default_limit(principal),
                token_id=UUID(principal.id) if principal.kind is PrincipalKind.TOKEN else None,
            )
            self.round_trips += 1
            if self.metrics is not None:
                self.metrics.rate_limit_check.observe(time.perf_counter() - started)
            lease.limit = result.limit
            if not result.allowed:
                if self.metrics is not None:
                    self.metrics.rate_limited.labels(principal.kind.value).inc()
                if held < 1:
                    self._remember(key, result.empty_for_s)
                return Decision(False, result.limit, 0, result.retry_after_s)
            # the operation spends what was held first, so what is left is all from this lease
            lease.points = max(held + result.taken - min(float(cost), held + result.need), 0.0)
            lease.expires = now + self.lease_s
            lease.bucket_left = result.left
            return Decision(True, result.limit, int(result.left + lease.points), 0.0)

    def _held(self, key: str, lease: _Lease, now: float) -> float:
        """What the slice holds now; an expired slice's points are set aside to be given back."""
        if now >= lease.expires and lease.points > 0:
            if len(self._stale) < _MAX_REMEMBERED:
                self._stale.append((key, lease.points, lease.limit))
            lease.points = 0.0
        return lease.usable(now)

    @staticmethod
    def _spend(lease: _Lease, cost: int, now: float) -> Decision | None:
        if lease.usable(now) < cost:
            return None
        lease.points -= cost
        return Decision(True, lease.limit, int(lease.bucket_left + lease.points), 0.0)

    async def penalize(self, db: RequestDb, principal: Principal, cost: int) -> Decision:
        """Charge a refused document: ``cost`` points, or whatever the slice and the bucket hold if
        less. Not allowed when they held less than ``cost``; an emptied bucket is remembered here, so
        the next requests are refused at the edge (429) without parsing or SQL."""
        key = self.key(principal)
        lease = self._lease_of(key)
        async with lease.lock:
            now = time.monotonic()
            decision = self._spend(lease, cost, now)
            if decision is not None:
                return decision
            held = self._held(key, lease, now)
            lease.points = 0.0  # spent on this refusal
            result = await repo.penalize(
                _Autocommit(db),
                key=key,
                cost=max(cost - int(held), 1),
                default_limit=self.default_limit(principal),
                token_id=UUID(principal.id) if principal.kind is PrincipalKind.TOKEN else None,
            )
            self.round_trips += 1
        if not result.allowed and self.metrics is not None:
            self.metrics.rate_limited.labels(principal.kind.value).inc()
        if result.empty_for_s > 0:
            self._remember(key, result.empty_for_s)
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
