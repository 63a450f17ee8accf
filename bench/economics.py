"""What tiers earn, at scale (issue 15): the economics report (``tierEconomics``) over the benchmark data of
bench/generate.py (customers, purchases, complaints, survey answers, benefits, refunds and benefit uses), and
the ingest of benefit uses (``recordBenefitRedemptions``) and refunds (``recordRefunds``) in batches.

    python -m bench.economics [--customers 100000] [--rounds 5] [--days 90] [--ingest-batches 10]

The data is made once per size in ``tierwise_bench_<N>`` (shared with bench/suite.py) and reused. Each figure
is the service's own path in process (the app over an ASGI transport, real tokens, no network): the report as
an admin for the last ``--days`` days, ``--rounds`` times after one warm-up (median and best), with the plan
of its statement (EXPLAIN ANALYZE, BUFFERS); then ``--ingest-batches`` batches of 500 uses of a benefit by
eligible customers, and as many of 500 refunds of 0.01 each (a refund re-tiers its customers in the same
transaction, like a purchase), one request at a time. What the ingest wrote is deleted afterwards and the
metrics of its customers recomputed, so the data set stays as generated. Writes bench/results/economics.md.

Absolute figures depend on the machine and what else runs on it: the file says what it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import machine, migrated_database
from bench.generate import generate
from bench.retier import client
from infra import churn, metrics
from infra.repos import economics as economics_repo
from infra.repos.base import ALL
from infra.tiering import retier

BATCH = 500
RESULTS = Path(__file__).resolve().parent / "results" / "economics.md"
REPORT = """query($from: DateTime!, $to: DateTime!) { tierEconomics(from: $from, to: $to) {
  rows { tier customers revenue refunds netRevenue benefitUses benefitCost complaints complaintHours
         surveyResponses serviceCost contribution contributionPerCustomer againstTierBelow } } }"""
REDEEM = """mutation($input: RecordBenefitRedemptionsInput!) { recordBenefitRedemptions(input: $input) {
  insertedCount userErrors { field code message } } }"""
REFUND = """mutation($input: RecordRefundsInput!) { recordRefunds(input: $input) {
  insertedCount userErrors { field code message } } }"""


def _gid(kind: str, raw: Any) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{raw}".encode()).decode().rstrip("=")


async def _timed(c: Any, body: dict[str, Any], check: Any) -> float:
    t0 = time.perf_counter()
    r = await c.post("/graphql", json=body)
    seconds = time.perf_counter() - t0
    data = r.json()
    assert r.status_code == 200, data
    assert "errors" not in data, data
    check(data["data"])
    return seconds


async def run(
    customers: int, rounds: int, days: int, batches: int, *, url: str | None = None, workers: int = 2
) -> dict[str, Any]:
    """The figures (``url``: a migrated database to fill or reuse instead of ``tierwise_bench_<customers>``)."""
    url = url or await migrated_database(f"tierwise_bench_{customers}")
    made = await generate(url, customers, workers=workers, progress=workers > 0)
    until = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    since = until - dt.timedelta(days=days)
    out: dict[str, Any] = {"customers": customers, "counts": made.counts, "days": days}
    run_id = uuid.uuid4().hex[:8]
    async with client(url) as (c, services):
        async with services.engine.connect() as conn:
            out["rows"] = {
                name: (await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one()
                for name in ("customers", "purchases", "refunds", "benefit_redemptions", "complaints")
            }
            sql, params = economics_repo._statement(since, until, ALL)
            plan = (await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params)).scalars()
            out["plan"] = "\n".join(plan)
            # customers of a tier eligible for free shipping, and purchases to refund a cent of
            eligible = (
                await conn.execute(
                    text(
                        "SELECT c.id FROM customers c JOIN benefits b ON c.tier_code = ANY(b.tiers)"
                        " JOIN tier_policies p ON p.id = b.policy_id AND p.status = 'active'"
                        " WHERE b.code = 'free_shipping' AND c.deleted_at IS NULL ORDER BY c.id LIMIT :n"
                    ),
                    {"n": BATCH * batches},
                )
            ).scalars()
            eligible_ids = list(eligible)
            purchases = list(
                (
                    await conn.execute(
                        text(
                            "SELECT p.id FROM purchases p WHERE NOT EXISTS (SELECT 1 FROM refunds f"
                            " WHERE f.purchase_id = p.id) ORDER BY p.id DESC LIMIT :n"
                        ),
                        {"n": BATCH * batches},
                    )
                ).scalars()
            )
        variables = {"from": since.isoformat(), "to": until.isoformat()}

        def report_ok(data: dict[str, Any]) -> None:
            assert data["tierEconomics"]["rows"], data

        await _timed(c, {"query": REPORT, "variables": variables}, report_ok)  # warm-up
        samples = [await _timed(c, {"query": REPORT, "variables": variables}, report_ok) for _ in range(rounds)]
        out["report_median_s"] = statistics.median(samples)
        out["report_best_s"] = min(samples)
        out["report_samples"] = samples

        def inserted(name: str, n: int) -> Any:
            def check(data: dict[str, Any]) -> None:
                assert data[name]["userErrors"] == [], data[name]["userErrors"]
                assert data[name]["insertedCount"] == n, data[name]

            return check

        uses = [
            {
                "benefitCode": "free_shipping",
                "customerId": _gid("Customer", cid),
                "externalId": f"bench-econ-{run_id}-u{n}",
            }
            for n, cid in enumerate(eligible_ids)
        ]
        refunds = [
            {"purchaseId": _gid("Purchase", pid), "amount": "0.01", "externalId": f"bench-econ-{run_id}-r{n}"}
            for n, pid in enumerate(purchases)
        ]
        use_s = refund_s = 0.0
        done_uses = done_refunds = 0
        try:
            for b in range(0, len(uses), BATCH):  # the last batch smaller when fewer customers are eligible
                batch = uses[b : b + BATCH]
                use_s += await _timed(
                    c,
                    {"query": REDEEM, "variables": {"input": {"redemptions": batch}}},
                    inserted("recordBenefitRedemptions", len(batch)),
                )
                done_uses += len(batch)
            for b in range(0, len(refunds), BATCH):
                batch = refunds[b : b + BATCH]
                refund_s += await _timed(
                    c,
                    {"query": REFUND, "variables": {"input": {"refunds": batch}}},
                    inserted("recordRefunds", len(batch)),
                )
                done_refunds += len(batch)
        finally:
            async with services.engine.begin() as conn:
                touched = list(
                    (
                        await conn.execute(
                            text("DELETE FROM refunds WHERE external_id LIKE :p RETURNING customer_id"),
                            {"p": f"bench-econ-{run_id}-%"},
                        )
                    ).scalars()
                )
                await conn.execute(
                    text("DELETE FROM benefit_redemptions WHERE external_id LIKE :p"), {"p": f"bench-econ-{run_id}-%"}
                )
                ids = list(dict.fromkeys(touched))
                if ids:
                    await metrics.recompute_for(conn, ids)
                    await retier(conn, ids, actor="bench-economics")
        out["uses"] = done_uses
        out["uses_per_s"] = done_uses / use_s if use_s else None
        out["refunds"] = done_refunds
        out["refunds_per_s"] = done_refunds / refund_s if refund_s else None
    out["load"] = os.getloadavg()[0]
    return out


# --- ingest over HTTP: uvicorn + wrk, like bench/suite.py's purchase ingest ------------------------------------

HTTP_PREFIX = "bench-econ-http"
LUA_ITEMS = {
    # kind: (mutation, list variable type, input field, item template: %s the key, then thread, request, item)
    "purchases": (
        "recordPurchases",
        "[PurchaseInput!]!",
        "purchases",
        '{"customerExternalRef":"%s","externalId":"' + HTTP_PREFIX + '-p-%d-%d-%d","amount":"12.50"}',
    ),
    "uses": (
        "recordBenefitRedemptions",
        "[RedemptionInput!]!",
        "redemptions",
        '{"benefitCode":"free_shipping","customerExternalRef":"%s","externalId":"' + HTTP_PREFIX + '-u-%d-%d-%d"}',
    ),
    "refunds": (
        "recordRefunds",
        "[RefundInput!]!",
        "refunds",
        '{"purchaseId":"%s","amount":"0.01","externalId":"' + HTTP_PREFIX + '-r-%d-%d-%d"}',
    ),
}


def lua_batches(kind: str, token: str, keys: list[str], batch: int) -> str:
    """wrk script: batches of ``batch`` items of ``kind`` over ``keys`` in turn (consecutive requests take
    consecutive windows of ``keys``, so requests in flight at once touch different rows), unique external ids."""
    mutation, list_type, field, item = LUA_ITEMS[kind]
    query = f"mutation($p: {list_type}) {{ {mutation}(input: {{{field}: $p}}) "
    query += "{ insertedCount userErrors { code field message } } }"
    lua_keys = ",".join(json.dumps(k) for k in keys)
    return f"""
local keys = {{{lua_keys}}}
local n = 0
math.randomseed(os.time() + math.floor(os.clock() * 1000000))  -- each wrk run its own external ids
local thread_id = math.random(1, 1000000000)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local head = {json.dumps('{"query":' + json.dumps(query) + ',"variables":{"p":[')}
request = function()
  n = n + 1
  local items = {{}}
  for i = 1, {batch} do
    local key = keys[((n * {batch} + i) % #keys) + 1]
    items[i] = string.format({json.dumps(item)}, key, thread_id, n, i)
  end
  local body = head .. table.concat(items, ",") .. "]}}}}"
  return wrk.format(nil, nil, nil, body)
end
"""


async def _http_keys(url: str, ctx: dict[str, Any], n: int) -> dict[str, list[str]]:
    """What the wrk scripts cycle over, all of the bench partner's own customers: external references (purchases),
    those of customers eligible for free shipping (uses), global ids of purchases of 1.00 or more never refunded
    (refunds)."""
    from infra.db import create_engine
    from infra.settings import Settings

    engine = create_engine(url, Settings(_env_file=None, run_worker=False))  # type: ignore[call-arg]
    partner = "(SELECT id FROM partners WHERE name = 'Northwind Shop')"
    try:
        async with engine.connect() as conn:
            eligible = (
                await conn.execute(
                    text(
                        "SELECT c.external_ref FROM customers c JOIN benefits b ON c.tier_code = ANY(b.tiers)"
                        " JOIN tier_policies p ON p.id = b.policy_id AND p.status = 'active'"
                        f" WHERE b.code = 'free_shipping' AND c.deleted_at IS NULL AND c.merged_into_id IS NULL"
                        f" AND c.partner_id = {partner} ORDER BY c.id LIMIT :n"
                    ),
                    {"n": n},
                )
            ).scalars()
            purchases = (
                await conn.execute(
                    text(
                        "SELECT p.id FROM purchases p JOIN customers c ON c.id = p.customer_id"
                        f" WHERE c.partner_id = {partner} AND c.deleted_at IS NULL AND c.merged_into_id IS NULL"
                        " AND p.amount >= 1 AND NOT EXISTS (SELECT 1 FROM refunds f WHERE f.purchase_id = p.id)"
                        " ORDER BY p.id DESC LIMIT :n"
                    ),
                    {"n": n},
                )
            ).scalars()
            return {
                "purchases": list(ctx["refs"]),
                "uses": list(eligible),
                "refunds": [_gid("Purchase", x) for x in purchases],
            }
    finally:
        await engine.dispose()


async def _http_cleanup(url: str) -> dict[str, int]:
    """Take out what the HTTP ingest wrote (refunds, uses, purchases: how many of each, returned) and put the
    metrics, tiers and churn scores of its customers back."""
    from infra.db import create_engine
    from infra.settings import Settings

    engine = create_engine(url, Settings(_env_file=None, run_worker=False, statement_timeout_ms=0))  # type: ignore[call-arg]
    like = {"p": f"{HTTP_PREFIX}-%"}
    try:
        async with engine.begin() as conn:
            touched: list[Any] = []
            stored: dict[str, int] = {}
            for kind, table in (("refunds", "refunds"), ("uses", "benefit_redemptions"), ("purchases", "purchases")):
                gone = list(
                    (
                        await conn.execute(
                            text(f"DELETE FROM {table} WHERE external_id LIKE :p RETURNING customer_id"), like
                        )
                    ).scalars()
                )
                stored[kind] = len(gone)
                touched += gone
            ids = list(dict.fromkeys(touched))
            if ids:
                await metrics.recompute_for(conn, ids)
                await retier(conn, ids, actor="bench-economics")
                await churn.refresh(conn, ids)
        return stored
    finally:
        await engine.dispose()


async def _analyze(url: str) -> None:
    """ANALYZE the tables the ingest writes, after its warm-up. A generated data set holds no use or refund
    with an external id; until PostgreSQL's statistics know of some, the replay lookup (by partner and external
    id) is planned as if the partner had none and filters all of its rows against the batch's 500 ids (170-370
    ms per batch once 24 000 of them were stored). Autovacuum analyzes a table once a tenth of it changed; a
    service in use has statistics that know its external ids, and this is that state."""
    from infra.db import create_engine
    from infra.settings import Settings

    engine = create_engine(url, Settings(_env_file=None, run_worker=False))  # type: ignore[call-arg]
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE purchases, refunds, benefit_redemptions"))
    finally:
        await engine.dispose()


def http_ingest(url: str, customers: int, seconds: int, connections: int) -> dict[str, Any]:
    """Purchases (the reference: the ingest path bench/suite.py measures), benefit uses and refunds, batches of
    ``BATCH`` sent by wrk over ``connections`` connections for ``seconds`` each to one uvicorn process of the
    service, as the bench partner; the server's and the database's CPU per batch; then the deferred churn work."""
    from bench import peers as P
    from bench import suite

    wrk = suite.ensure_wrk()
    ctx = asyncio.run(suite.prepare(url, customers))
    keys = asyncio.run(_http_keys(url, ctx, 200 * BATCH))
    database = url.rsplit("/", 1)[1].split("?")[0]
    env = {
        "TIERWISE_DATABASE_URL": url,
        "TIERWISE_RUN_WORKER": "false",
        "TIERWISE_DB_POOL_SIZE": "10",
        "TIERWISE_MAX_BATCH_SIZE": str(BATCH),
        "TIERWISE_STATEMENT_TIMEOUT_MS": "0",
    }
    cmd = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    cmd += ["--factory", "api.edge.app:create_app", "--port", str(suite.TW_PORT)]
    target = f"http://127.0.0.1:{suite.TW_PORT}/graphql"
    out: dict[str, Any] = {"connections": connections, "seconds": seconds, "kinds": {}}
    log = Path(tempfile.mkdtemp(prefix="tierwise-econ-")) / "tierwise.log"
    try:
        with suite.server(cmd, env, suite.TW_PORT, log) as proc:
            for kind in ("purchases", "uses", "refunds"):
                script = lua_batches(kind, ctx["partner"], keys[kind], BATCH)
                warm = suite.run_wrk(wrk, target, script, 2, connections)
                asyncio.run(_analyze(url))
                meter = P.Meter(proc.pid, database)
                meter.start()
                run = suite.run_wrk(wrk, target, script, seconds, connections)
                server_s, db_s = meter.stop()
                batches = max(run.requests, 1)
                out["kinds"][kind] = {
                    "per_s": run.rps * BATCH,
                    "p50_ms": run.p50_ms,
                    "p99_ms": run.p99_ms,
                    "non_2xx": run.errors,
                    "server_ms": server_s / batches * 1000,
                    "db_ms": db_s / batches * 1000,
                    "sent": (warm.requests + run.requests) * BATCH,  # compared with what was stored
                }
                print(f"{kind}: {run.rps * BATCH:,.0f}/s", file=sys.stderr)
        jobs, drain_s = asyncio.run(suite.drain_churn_jobs(url))
        out["churn_jobs"], out["churn_s"] = jobs, drain_s
    finally:
        stored = asyncio.run(_http_cleanup(url))
    for kind, figures in out["kinds"].items():
        figures["stored"] = stored[kind]
    return out


def markdown(r: dict[str, Any]) -> str:
    rows = r["rows"]
    lines = [
        f"# What tiers earn at scale (bench/economics.py, {r['customers']:,} customers)",
        "",
        f"Machine: {machine()}, load average {r['load']:.1f} at the end (other work on the machine counts). "
        "One process, in process (ASGI), one request at a time.",
        "",
        f"Data (bench/generate.py): {rows['customers']:,} customers, {rows['purchases']:,} purchases, "
        f"{rows['refunds']:,} refunds, {rows['benefit_redemptions']:,} benefit uses, "
        f"{rows['complaints']:,} complaints.",
        "",
        "| what | figure |",
        "|---|---:|",
        f"| tierEconomics, last {r['days']} days, median of {len(r['report_samples'])} | "
        f"{r['report_median_s'] * 1000:,.0f} ms |",
        f"| tierEconomics, best | {r['report_best_s'] * 1000:,.0f} ms |",
    ]
    if r["uses_per_s"]:
        lines.append(f"| recordBenefitRedemptions, batches of {BATCH} ({r['uses']:,}) | {r['uses_per_s']:,.0f} /s |")
    if r["refunds_per_s"]:
        lines.append(f"| recordRefunds, batches of {BATCH} ({r['refunds']:,}) | {r['refunds_per_s']:,.0f} /s |")
    http = r.get("http")
    if http:
        ref = http["kinds"]["purchases"]["per_s"]
        lines += [
            "",
            f"## Ingest over HTTP (one uvicorn process, wrk, {http['connections']} connections, "
            f"{http['seconds']} s each, batches of {BATCH}, as a partner)",
            "",
            "Purchases are the reference measured in the same run (the ingest path of bench/suite.py). "
            "Server and database CPU are per batch.",
            "",
            "| what | items/s | vs purchases | p50 ms | p99 ms | server CPU ms | database CPU ms | sent / stored |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        names = {"purchases": "recordPurchases", "uses": "recordBenefitRedemptions", "refunds": "recordRefunds"}
        for kind, f in http["kinds"].items():
            lines.append(
                f"| {names[kind]} | {f['per_s']:,.0f} | {f['per_s'] / ref:.2f} | {f['p50_ms']:.0f} | "
                f"{f['p99_ms']:.0f} | {f['server_ms']:.1f} | {f['db_ms']:.1f} | {f['sent']:,} / {f['stored']:,} |"
            )
        lines += [
            "",
            f"Refunds re-score their customers' churn in their own transaction; purchases queue it as a job in theirs "
            f"(the worker was off during the load): {http['churn_jobs']:,} jobs, worked off in {http['churn_s']:.1f} s "
            "afterwards.",
        ]
    lines += ["", "The report's statement (EXPLAIN ANALYZE, BUFFERS):", "", "```", r["plan"], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--ingest-batches", type=int, default=10)
    parser.add_argument("--http-seconds", type=int, default=10, help="ingest over HTTP for so long (0: not)")
    parser.add_argument("--connections", type=int, default=2, help="wrk connections of the HTTP ingest")
    args = parser.parse_args()
    result = asyncio.run(run(args.customers, args.rounds, args.days, args.ingest_batches))
    if args.http_seconds:
        url = asyncio.run(migrated_database(f"tierwise_bench_{args.customers}"))
        result["http"] = http_ingest(url, args.customers, args.http_seconds, args.connections)
    text_md = markdown(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text_md, encoding="utf-8")
    print(text_md)
