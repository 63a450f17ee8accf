"""The raw baseline: a minimal Starlette + asyncpg service answering the benchmark's questions with
hand-written SQL and the same JSON as tierwise — the practical limit of this machine. No GraphQL, no
access-control layer (masking is applied inline for the support-agent page, as the answer requires).

    BENCH_DATABASE_URL=postgresql://… uvicorn bench.baseline:app --port 18002
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE_SQL = """
SELECT c.id, c.name, c.email, c.phone, c.lifecycle_stage, c.tier_code, t.name AS tier_name, c.created_at,
       coalesce((SELECT json_agg(json_build_object('subject', k.subject, 'status', k.status, 'severity', k.severity,
                                                  'openedAt', k.opened_at) ORDER BY k.opened_at DESC, k.id DESC)
                 FROM (SELECT * FROM complaints k WHERE k.customer_id = c.id
                       ORDER BY k.opened_at DESC, k.id DESC LIMIT 3) k), '[]') AS complaints
FROM customers c
LEFT JOIN tiers t ON t.code = c.tier_code
     AND t.policy_id = (SELECT id FROM tier_policies WHERE status = 'active')
WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL AND ($2::timestamptz IS NULL OR (c.created_at, c.id) > ($2, $3))
ORDER BY c.created_at, c.id
LIMIT $1
"""

CUSTOMER_SQL = """
SELECT c.*, m.lifetime_spend, m.spend_12m, m.orders_12m, m.order_count, m.last_purchase_at,
       (SELECT json_agg(p ORDER BY p.purchased_at DESC) FROM (SELECT external_id AS "externalId", amount,
               purchased_at AS "purchasedAt" FROM purchases WHERE customer_id = c.id
               ORDER BY purchased_at DESC LIMIT 5) p) AS purchases,
       (SELECT json_agg(k ORDER BY k."openedAt" DESC) FROM (SELECT subject, description, status,
               opened_at AS "openedAt" FROM complaints WHERE customer_id = c.id
               ORDER BY opened_at DESC LIMIT 5) k) AS complaints
FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id
WHERE c.id = $1
"""


def mask_phone(v: str | None) -> str | None:
    if v is None:
        return None
    head = min(6 if v.startswith("+") else 3, len(v) - 8)
    return v[:head] + "*" * (len(v) - head - 4) + v[-4:] if len(v) > 8 else "*" * len(v)


def mask_email(v: str | None) -> str | None:
    if v is None:
        return None
    local, _, domain = v.partition("@")
    return local[:1] + "***@" + domain


def _cursor(created_at: Any, row_id: Any) -> str:
    raw = orjson.dumps(["CREATED_AT", created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, Any]:
    import datetime as dt
    import uuid

    _, value, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return dt.datetime.fromisoformat(value), uuid.UUID(row_id)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["BENCH_DATABASE_URL"], min_size=4, max_size=10)
    yield
    await app.state.pool.close()


async def page(request: Request) -> Response:
    first = int(request.query_params.get("first", "50"))
    masked = request.query_params.get("role") == "support_agent"
    after = request.query_params.get("after")
    at, rid = _decode(after) if after else (None, None)
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(PAGE_SQL, first + 1, at, rid)
    edges = []
    for r in rows[:first]:
        email, phone = (mask_email(r["email"]), mask_phone(r["phone"])) if masked else (r["email"], r["phone"])
        complaints = orjson.loads(r["complaints"])
        edges.append(
            {
                "cursor": _cursor(r["created_at"], r["id"]),
                "node": {
                    "name": r["name"],
                    "email": email,
                    "phone": phone,
                    "lifecycleStage": r["lifecycle_stage"].upper(),
                    "tier": {"code": r["tier_code"], "name": r["tier_name"]},
                    "complaints": {"edges": [{"node": k} for k in complaints]},
                },
            }
        )
    body = {
        "data": {
            "customers": {
                "edges": edges,
                "pageInfo": {"hasNextPage": len(rows) > first, "endCursor": edges[-1]["cursor"] if edges else None},
            }
        }
    }
    return Response(orjson.dumps(body), media_type="application/json", headers={"x-sql-statements": "1"})


async def customer(request: Request) -> Response:
    import uuid

    async with request.app.state.pool.acquire() as conn:
        r = await conn.fetchrow(CUSTOMER_SQL, uuid.UUID(request.path_params["id"]))
    node = {
        "name": r["name"],
        "email": r["email"],
        "phone": r["phone"],
        "nationalId": r["national_id"],
        "birthDate": r["birth_date"].isoformat() if r["birth_date"] else None,
        "address": orjson.loads(r["address"]) if isinstance(r["address"], str) else r["address"],
        "tier": {"code": r["tier_code"]},
        "metrics": {
            "lifetimeSpend": str(r["lifetime_spend"]),
            "spend12m": str(r["spend_12m"]),
            "orders12m": r["orders_12m"],
            "lastPurchaseAt": r["last_purchase_at"],
        },
        "purchases": {"edges": [{"node": p} for p in orjson.loads(r["purchases"] or "[]")]},
        "complaints": {"edges": [{"node": k} for k in orjson.loads(r["complaints"] or "[]")]},
    }
    return Response(
        orjson.dumps({"data": {"customer": node}}, default=str),
        media_type="application/json",
        headers={"x-sql-statements": "1"},
    )


app = Starlette(routes=[Route("/page", page), Route("/customer/{id}", customer)], lifespan=lifespan)
