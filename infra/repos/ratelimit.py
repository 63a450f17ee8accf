"""Rate-limit buckets in PostgreSQL, shared by every instance: one row per caller, updated by one
atomic statement per operation.

A token bucket: a caller allowed ``L`` points a minute holds at most ``L`` points, refilled at ``L``
per minute; an operation costing ``n`` takes ``n`` points if the bucket holds them and is refused
otherwise (a refusal changes nothing). The row keeps the points left and when; the refill up to now
is computed in the statement, under the row lock that ``ON CONFLICT DO UPDATE`` takes, so concurrent
charges from any number of instances are exact.

The caller's limit is read in the same statement: a partner token's ``rate_limit_per_minute`` (set
by admins at runtime) or the default passed in. The table is UNLOGGED: a crash only hands every
caller a full bucket, and charging writes no WAL.

``lease`` is what the request path uses: it takes an operation's cost and a slice of the budget on
top, which the instance spends without asking again (api/edge/ratelimit.py); ``give_back`` returns
what a lease did not spend. ``charge`` takes exactly the cost (a lease with no slice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, text, update
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from infra.repos.base import Executor
from infra.tables import api_tokens

WINDOW_S = 60.0

_CHARGE = text(
    """
    WITH req AS (
        SELECT per_minute, CAST(least(:cost, per_minute) AS float8) AS cost
        FROM (
            SELECT greatest(coalesce(
                       (SELECT t.rate_limit_per_minute FROM api_tokens t WHERE t.id = :token_id),
                       :default_limit), 1) AS per_minute
        ) cfg
    ),
    taken AS (
        INSERT INTO rate_limit_buckets AS b (key, points, at)
        SELECT :key, per_minute - cost, now() FROM req
        ON CONFLICT (key) DO UPDATE
            SET points = least((SELECT per_minute FROM req),
                               b.points + extract(epoch FROM now() - b.at) * (SELECT per_minute FROM req) / 60.0)
                         - (SELECT cost FROM req),
                at = now()
            WHERE least((SELECT per_minute FROM req),
                        b.points + extract(epoch FROM now() - b.at) * (SELECT per_minute FROM req) / 60.0)
                  >= (SELECT cost FROM req)
        RETURNING b.points
    )
    SELECT (SELECT points FROM taken) AS left_after,
           (SELECT least(r.per_minute, b.points + extract(epoch FROM now() - b.at) * r.per_minute / 60.0)
              FROM rate_limit_buckets b, req r WHERE b.key = :key) AS available,
           (SELECT per_minute FROM req) AS per_minute,
           (SELECT cost FROM req) AS cost
    """
).bindparams(bindparam("token_id", type_=PG_UUID(as_uuid=True)))


@dataclass(frozen=True)
class Charge:
    allowed: bool
    limit: int  # points per minute
    remaining: int  # points left right after this operation (0 when refused)
    retry_after_s: float  # until this operation would fit (0 when allowed)
    empty_for_s: float = 0.0  # until the bucket holds one point again (0 when allowed)


async def charge(db: Executor, *, key: str, cost: int, default_limit: int, token_id: UUID | None = None) -> Charge:
    """Take ``cost`` points from ``key``'s bucket if it holds them (one statement, atomic)."""
    row = (
        await db.execute(
            _CHARGE, {"key": key, "cost": max(cost, 1), "default_limit": default_limit, "token_id": token_id}
        )
    ).one()
    per_minute = int(row.per_minute)
    if row.left_after is not None:
        return Charge(True, per_minute, max(int(row.left_after), 0), 0.0)
    available = float(row.available or 0.0)  # seen before this statement's refusal
    seconds_per_point = WINDOW_S / per_minute
    fits_in = (float(row.cost) - available) * seconds_per_point
    one_point_in = (1.0 - available) * seconds_per_point
    return Charge(False, per_minute, 0, max(fits_in, 0.001), max(one_point_in, 0.0))


# A lease: take ``need`` points (the operation's cost less what the instance still holds) plus up to
# ``extra`` more (its slice of the budget) if the bucket holds ``need``; the more that is handed out is
# what the bucket holds beyond ``need``, up to ``extra``. ``taken`` tells the instance what it got.
_LEASE = text(
    """
    WITH req AS (
        SELECT per_minute, least(CAST(:need AS float8), CAST(per_minute AS float8)) AS need,
               CAST(floor(per_minute * CAST(:fraction AS float8)) AS float8) AS extra
        FROM (
            SELECT greatest(coalesce(
                       (SELECT t.rate_limit_per_minute FROM api_tokens t WHERE t.id = :token_id),
                       :default_limit), 1) AS per_minute
        ) cfg
    ),
    took AS (
        INSERT INTO rate_limit_buckets AS b (key, points, at, taken)
        SELECT :key, per_minute - least(per_minute, need + extra), now(), least(per_minute, need + extra) FROM req
        ON CONFLICT (key) DO UPDATE
            SET points = least((SELECT per_minute FROM req),
                               b.points + extract(epoch FROM now() - b.at) * (SELECT per_minute FROM req) / 60.0)
                         - least(least((SELECT per_minute FROM req),
                                       b.points + extract(epoch FROM now() - b.at)
                                                  * (SELECT per_minute FROM req) / 60.0),
                                 (SELECT need + extra FROM req)),
                taken = least(least((SELECT per_minute FROM req),
                                    b.points + extract(epoch FROM now() - b.at) * (SELECT per_minute FROM req) / 60.0),
                              (SELECT need + extra FROM req)),
                at = now()
            WHERE least((SELECT per_minute FROM req),
                        b.points + extract(epoch FROM now() - b.at) * (SELECT per_minute FROM req) / 60.0)
                  >= (SELECT need FROM req)
        RETURNING b.points, b.taken
    )
    SELECT (SELECT points FROM took) AS left_after,
           (SELECT taken FROM took) AS taken,
           (SELECT least(r.per_minute, b.points + extract(epoch FROM now() - b.at) * r.per_minute / 60.0)
              FROM rate_limit_buckets b, req r WHERE b.key = :key) AS available,
           (SELECT per_minute FROM req) AS per_minute,
           (SELECT need FROM req) AS need
    """
).bindparams(bindparam("token_id", type_=PG_UUID(as_uuid=True)))


@dataclass(frozen=True)
class Lease:
    allowed: bool
    limit: int  # points per minute
    taken: float  # points handed out: ``need`` and the slice beyond it (0 when refused)
    need: float  # what had to be taken for the operation to run (capped at the limit)
    left: float  # what the bucket holds after this statement
    retry_after_s: float  # until ``need`` would fit (0 when allowed)
    empty_for_s: float = 0.0  # until the bucket holds one point again (0 when allowed)


async def lease(
    db: Executor, *, key: str, need: float, fraction: float, default_limit: int, token_id: UUID | None = None
) -> Lease:
    """Take ``need`` points from ``key``'s bucket and up to ``fraction`` of its per-minute limit more,
    if it holds ``need`` (one statement, atomic); refused, nothing changes."""
    params = {
        "key": key,
        "need": max(need, 0.0),
        "fraction": max(fraction, 0.0),
        "default_limit": default_limit,
        "token_id": token_id,
    }
    row = (await db.execute(_LEASE, params)).one()
    per_minute = int(row.per_minute)
    if row.taken is not None:
        return Lease(True, per_minute, float(row.taken), float(row.need), max(float(row.left_after), 0.0), 0.0)
    available = float(row.available or 0.0)  # seen before this statement's refusal
    seconds_per_point = WINDOW_S / per_minute
    fits_in = (float(row.need) - available) * seconds_per_point
    one_point_in = (1.0 - available) * seconds_per_point
    return Lease(False, per_minute, 0.0, float(row.need), available, max(fits_in, 0.001), max(one_point_in, 0.0))


# Points an instance leased and did not spend, given back (capped at each bucket's limit, so what is
# given back never makes a bucket hold more than a full minute's budget).
_GIVE_BACK = text(
    """
    UPDATE rate_limit_buckets AS b
       SET points = least(r.per_minute, b.points + extract(epoch FROM now() - b.at) * r.per_minute / 60.0 + r.points),
           at = now()
      FROM unnest(CAST(:keys AS text[]), CAST(:points AS float8[]), CAST(:limits AS float8[]))
           AS r(key, points, per_minute)
     WHERE b.key = r.key
    """
)


async def give_back(db: Executor, returns: list[tuple[str, float, int]]) -> None:
    """Return unspent leased points: (key, points, the caller's per-minute limit) each, one statement."""
    if not returns:
        return
    await db.execute(
        _GIVE_BACK,
        {
            "keys": [k for k, _, _ in returns],
            "points": [float(p) for _, p, _ in returns],
            "limits": [float(limit) for _, _, limit in returns],
        },
    )


_PENALIZE = text(
    """
    WITH req AS (
        SELECT per_minute, CAST(least(:cost, per_minute) AS float8) AS cost
        FROM (
            SELECT greatest(coalesce(
                       (SELECT t.rate_limit_per_minute FROM api_tokens t WHERE t.id = :token_id),
                       :default_limit), 1) AS per_minute
        ) cfg
    ),
    before AS (
        SELECT least(r.per_minute, b.points + extract(epoch FROM now() - b.at) * r.per_minute / 60.0) AS available
        FROM rate_limit_buckets b, req r WHERE b.key = :key
    ),
    taken AS (
        INSERT INTO rate_limit_buckets AS b (key, points, at)
        SELECT :key, greatest(per_minute - cost, 0), now() FROM req
        ON CONFLICT (key) DO UPDATE
            SET points = greatest(least((SELECT per_minute FROM req),
                                        b.points + extract(epoch FROM now() - b.at)
                                                   * (SELECT per_minute FROM req) / 60.0)
                                  - (SELECT cost FROM req), 0),
                at = now()
        RETURNING b.points
    )
    SELECT (SELECT points FROM taken) AS left_after,
           coalesce((SELECT available FROM before), (SELECT per_minute FROM req)) AS available,
           (SELECT per_minute FROM req) AS per_minute,
           (SELECT cost FROM req) AS cost
    """
).bindparams(bindparam("token_id", type_=PG_UUID(as_uuid=True)))


async def penalize(db: Executor, *, key: str, cost: int, default_limit: int, token_id: UUID | None = None) -> Charge:
    """Take ``cost`` points from ``key``'s bucket, or all it holds if that is less (one statement,
    atomic): the price of a refused document. ``allowed`` says whether the bucket held the cost."""
    row = (
        await db.execute(
            _PENALIZE, {"key": key, "cost": max(cost, 1), "default_limit": default_limit, "token_id": token_id}
        )
    ).one()
    per_minute = int(row.per_minute)
    available, left = float(row.available), float(row.left_after)
    seconds_per_point = WINDOW_S / per_minute
    one_point_in = max((1.0 - left) * seconds_per_point, 0.0)
    if available >= float(row.cost):
        return Charge(True, per_minute, max(int(left), 0), 0.0, one_point_in)
    fits_in = (float(row.cost) - left) * seconds_per_point
    return Charge(False, per_minute, 0, max(fits_in, 0.001), one_point_in)


async def set_token_limit(db: Executor, token_id: UUID, per_minute: int | None) -> dict[str, Any] | None:
    """Set (or, with None, reset to the default) a partner token's points per minute. The token starts
    over with a full bucket under its new limit."""
    stmt = (
        update(api_tokens)
        .where(api_tokens.c.id == token_id)
        .values(rate_limit_per_minute=per_minute)
        .returning(api_tokens)
    )
    row = (await db.execute(stmt)).first()
    if row is None:
        return None
    await db.execute(_FORGET, {"key": f"token:{token_id}"})
    return dict(row._mapping)


_FORGET = text("DELETE FROM rate_limit_buckets WHERE key = :key")


def retry_after_header(seconds: float) -> str:
    return str(max(math.ceil(seconds), 1))


# An allowance of ``limit`` attempts per ``window`` seconds under any key (identity checks: one key per
# caller and customer), in the same buckets: refilled evenly over the window, one attempt taken or none.
_TAKE = text(
    """
    WITH cfg AS (SELECT CAST(:limit AS float8) AS lim, CAST(:window AS float8) AS win),
    taken AS (
        INSERT INTO rate_limit_buckets AS b (key, points, at)
        SELECT :key, lim - 1, now() FROM cfg
        ON CONFLICT (key) DO UPDATE
            SET points = (SELECT least(lim, b.points + extract(epoch FROM now() - b.at) * lim / win) FROM cfg) - 1,
                at = now()
            WHERE (SELECT least(lim, b.points + extract(epoch FROM now() - b.at) * lim / win) FROM cfg) >= 1
        RETURNING b.points
    )
    SELECT (SELECT points FROM taken) AS left_after,
           (SELECT least(cfg.lim, b.points + extract(epoch FROM now() - b.at) * cfg.lim / cfg.win)
              FROM rate_limit_buckets b, cfg WHERE b.key = :key) AS available
    """
)


@dataclass(frozen=True)
class Attempt:
    allowed: bool
    left: int  # whole attempts left after this one
    retry_after_s: float  # until one attempt is available again (0 when allowed)


async def take_attempt(db: Executor, *, key: str, limit: int, window_s: float) -> Attempt:
    """Take one of ``limit`` attempts per ``window_s`` from ``key``'s allowance (one atomic statement,
    shared by every instance); refused, nothing changes."""
    row = (await db.execute(_TAKE, {"key": key, "limit": limit, "window": float(window_s)})).one()
    if row.left_after is not None:
        return Attempt(True, max(int(row.left_after), 0), 0.0)
    available = float(row.available or 0.0)
    return Attempt(False, 0, max((1.0 - available) * window_s / limit, 0.001))
