"""The raw baseline: a minimal Starlette + asyncpg service answering the benchmark's questions with
hand-written SQL and the same JSON as tierwise — the practical limit of this machine. No GraphQL, no
access-control layer (masking is applied inline for the support-agent page, as the answer requires).

Sensitive values are stored encrypted (infra/crypto.py): the baseline decrypts them with the same keyring,
as any service reading this database must. Not everything is hand-written here: the reports call
infra/repos/reports.py itself (survey_scores, fairness, with their default ``summaries=True``, so they read
the trigger-kept summary tables of migration 0010 just as tierwise does) and the tier distribution calls
infra/repos/tiers.py: their ratios measure what tierwise adds around the same SQL, not the summaries' gain
over a scan of the raw tables (README: "Reports over the 1 M data set" gives both). Ingest
inserts the batch, then recomputes the metrics and re-tiers the customers touched (the first two steps of
infra/after_change) in the same transaction, as tierwise does, without its churn job.

    BENCH_DATABASE_URL=postgresql://… uvicorn bench.baseline:app --port 18002
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authz.masking import mask_email, mask_phone
from infra import crypto, metrics, tiering
from infra.db import create_engine
from infra.repos import reports as reports_repo
from infra.repos import tiers as tiers_repo
from infra.repos.base import ALL, Scope
from infra.settings import Settings

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
       (SELECT json_agg(p ORDER BY p."purchasedAt" DESC) FROM (SELECT external_id AS "externalId", amount,
               purchased_at AS "purchasedAt" FROM purchases WHERE customer_id = c.id
               ORDER BY purchased_at DESC, id DESC LIMIT 5) p) AS purchases,
       (SELECT json_agg(k ORDER BY k."openedAt" DESC) FROM (SELECT id, subject, description, status,
               opened_at AS "openedAt" FROM complaints WHERE customer_id = c.id
               ORDER BY opened_at DESC, id DESC LIMIT 5) k) AS complaints
FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id
WHERE c.id = $1
"""

RESOLVE_SQL = """
SELECT u.n, c.id FROM unnest($2::text[]) WITH ORDINALITY AS u(ref, n)
LEFT JOIN customers c ON c.partner_id = $1 AND c.external_ref = u.ref
     AND c.deleted_at IS NULL AND c.merged_into_id IS NULL
ORDER BY u.n
"""
INSERT_SQL = text("""
INSERT INTO purchases (customer_id, partner_id, external_id, amount, currency, channel, purchased_at)
SELECT u.c, CAST(:partner AS uuid), u.e, u.a, 'EUR', NULL, now()
FROM unnest(CAST(:customers AS uuid[]), CAST(:externals AS text[]), CAST(:amounts AS numeric[])) AS u(c, e, a)
ON CONFLICT (partner_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
RETURNING id
""")

_statements: contextvars.ContextVar[list[int]] = contextvars.ContextVar("statements")


def _open(token: str | None, column: str, row_id: Any) -> str | None:
    return None if token is None else crypto.current().decrypt(token, column, row_id)


def _cursor(created_at: Any, row_id: Any) -> str:
    raw = orjson.dumps(["CREATED_AT", created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, Any]:
    _, value, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return dt.datetime.fromisoformat(value), uuid.UUID(row_id)


def _json(body: Any, statements: int) -> Response:
    return Response(
        orjson.dumps(body, default=str), media_type="application/json", headers={"x-sql-statements": str(statements)}
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = os.environ["BENCH_DATABASE_URL"]
    app.state.pool = await asyncpg.create_pool(url, min_size=4, max_size=10)
    app.state.engine = create_engine(url, Settings(_env_file=None, statement_timeout_ms=0))  # type: ignore[call-arg]

    @event.listens_for(app.state.engine.sync_engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        with contextlib.suppress(LookupError):
            _statements.get()[0] += 1

    async with app.state.pool.acquire() as conn:
        app.state.partner = await conn.fetchval("SELECT id FROM partners WHERE name = 'Northwind Shop'")
    yield
    await app.state.pool.close()
    await app.state.engine.dispose()


async def page(request: Request) -> Response:
    first = int(request.query_params.get("first", "50"))
    masked = request.query_params.get("role") == "support_agent"
    after = request.query_params.get("after")
    at, rid = _decode(after) if after else (None, None)
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(PAGE_SQL, first + 1, at, rid)
    edges = []
    for r in rows[:first]:
        email, phone = _open(r["email"], "customers.email", r["id"]), _open(r["phone"], "customers.phone", r["id"])
        if masked:
            email, phone = (mask_email(email) if email else None), (mask_phone(phone) if phone else None)
        complaints = orjson.loads(r["complaints"])
        for k in complaints:
            k["status"], k["severity"] = k["status"].upper(), k["severity"].upper()
            k["openedAt"] = dt.datetime.fromisoformat(k["openedAt"]).isoformat()
        edges.append(
            {
                "cursor": _cursor(r["created_at"], r["id"]),
                "node": {
                    "name": r["name"],
                    "email": email,
                    "phone": phone,
                    "lifecycleStage": r["lifecycle_stage"].upper(),
                    "tier": {"code": r["tier_code"], "name": r["tier_name"]} if r["tier_code"] else None,
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
    return _json(body, 1)


async def customer(request: Request) -> Response:
    async with request.app.state.pool.acquire() as conn:
        r = await conn.fetchrow(CUSTOMER_SQL, uuid.UUID(request.path_params["id"]))
    address = _open(r["address"], "customers.address", r["id"])
    node = {
        "name": r["name"],
        "email": _open(r["email"], "customers.email", r["id"]),
        "phone": _open(r["phone"], "customers.phone", r["id"]),
        "nationalId": _open(r["national_id"], "customers.national_id", r["id"]),
        "birthDate": _open(r["birth_date"], "customers.birth_date", r["id"]),
        "address": orjson.loads(address) if address else None,
        "tier": {"code": r["tier_code"]} if r["tier_code"] else None,
        "metrics": {
            "lifetimeSpend": str(r["lifetime_spend"]),
            "spend12m": str(r["spend_12m"]),
            "orders12m": r["orders_12m"],
            "lastPurchaseAt": r["last_purchase_at"].isoformat() if r["last_purchase_at"] else None,
        },
        "purchases": {
            "edges": [
                {"node": {**p, "amount": f"{Decimal(str(p['amount'])):.2f}"}}
                for p in orjson.loads(r["purchases"] or "[]")
            ]
        },
        "complaints": {
            "edges": [
                {
                    "node": {
                        **{f: v for f, v in k.items() if f != "id"},
                        "description": _open(k["description"], "complaints.description", k["id"]),
                        "status": k["status"].upper(),
                    }
                }
                for k in orjson.loads(r["complaints"] or "[]")
            ]
        },
    }
    return _json({"data": {"customer": node}}, 1)


async def _counted(request: Request, run: Any) -> Response:
    counter = [0]
    token = _statements.set(counter)
    try:
        async with request.app.state.engine.connect() as conn:
            body = await run(conn)
            await conn.commit()
    finally:
        _statements.reset(token)
    return _json(body, counter[0])


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


async def report_nps(request: Request) -> Response:
    async def run(conn: Any) -> Any:
        rows = await reports_repo.survey_scores(
            conn, kind="nps", group_by=["TIER"], period="month", since=None, until=None, survey_id=None, scope=ALL
        )
        return {
            "data": {
                "reports": {
                    "surveyScores": [
                        {
                            "tier": r["TIER"],
                            "answers": r["answers"],
                            "score": _float(r["score"]),
                            "invitations": r["invitations"],
                            "responseRate": _float(r["response_rate"]),
                        }
                        for r in rows
                    ]
                }
            }
        }

    return await _counted(request, run)


async def report_sla(request: Request) -> Response:
    async def run(conn: Any) -> Any:
        rows = await reports_repo.fairness(conn, since=None, until=None, scope=ALL)
        return {
            "data": {
                "reports": {
                    "fairness": {
                        "tiers": [
                            {
                                "tier": r["tier"],
                                "complaints": r["complaints"],
                                "breachedComplaints": r["breached"],
                                "slaBreachRate": _float(r["breach_rate"]),
                                "medianFirstResponseMinutes": _float(r["median_first_response_minutes"]),
                                "medianResolutionMinutes": _float(r["median_resolution_minutes"]),
                            }
                            for r in rows
                        ]
                    }
                }
            }
        }

    return await _counted(request, run)


async def report_tiers(request: Request) -> Response:
    async def run(conn: Any) -> Any:
        rows = await tiers_repo.distribution(conn, Scope())
        ranks = dict((await conn.execute(text(reports_repo.ACTIVE_TIERS))).all())  # highest tier first
        rows.sort(key=lambda r: -ranks.get(r["tier_code"], -1))
        return {
            "data": {
                "tierDistribution": {
                    "customers": sum(int(r["customers"]) for r in rows),
                    "tiers": [{"tier": r["tier_code"], "customers": int(r["customers"])} for r in rows],
                }
            }
        }

    return await _counted(request, run)


async def ingest(request: Request) -> Response:
    items = orjson.loads(await request.body())["purchases"]
    partner = request.app.state.partner

    async def run(conn: Any) -> Any:
        raw = (await conn.get_raw_connection()).driver_connection
        _statements.get()[0] += 1
        found = await raw.fetch(RESOLVE_SQL, partner, [i["customerExternalRef"] for i in items])
        ids = [r["id"] for r in found]
        if any(i is None for i in ids):
            return {"data": {"recordPurchases": {"insertedCount": None, "userErrors": [{"code": "NOT_FOUND"}]}}}
        inserted = (
            await conn.execute(
                INSERT_SQL,
                {
                    "partner": partner,
                    "customers": ids,
                    "externals": [i["externalId"] for i in items],
                    "amounts": [Decimal(i["amount"]) for i in items],
                },
            )
        ).all()
        if inserted:
            touched = sorted(set(ids), key=str)
            await metrics.recompute_for(conn, touched)
            await tiering.retier(conn, touched, actor="baseline")
        return {"data": {"recordPurchases": {"insertedCount": len(inserted), "userErrors": []}}}

    return await _counted(request, run)


app = Starlette(
    routes=[
        Route("/page", page),
        Route("/customer/{id}", customer),
        Route("/report/nps", report_nps),
        Route("/report/sla", report_sla),
        Route("/report/tiers", report_tiers),
        Route("/ingest", ingest, methods=["POST"]),
    ],
    lifespan=lifespan,
)
