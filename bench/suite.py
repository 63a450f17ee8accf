"""The benchmark suite: tierwise against a raw Starlette + asyncpg baseline, in one run, under a real
HTTP load generator (wrk) on loopback. Prints a markdown table and writes bench/results/suite.md.

    python -m bench.suite [--scale quick|full] [--customers N] [--duration 8] [--connections 8]

``--scale quick`` is 20 000 customers, ``--scale full`` 1 000 000 (10 000 000 purchases, 500 000
complaints, ~1 000 000 survey answers); the data comes from bench/generate.py (made once per size in
``tierwise_bench_<N>``, reused after). Workloads: a page of 50 as a support agent (masked) and as an
admin, one customer in full, the first page against the 10 000th (keyset cursor computed by SQL), purchase
ingest in batches of 500, and the reports (NPS by tier, SLA by tier, tier distribution) over the full data.
Each is checked to give the same JSON from both servers before it is timed.

Both servers run as single uvicorn processes (``--workers N``: N each) without access logs; wrk gets one
thread. Ratios are what to read: absolute figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from api.app import create_app
from api.auth import issue_staff_token, new_partner_token
from authz import admin
from bench.common import machine, migrated_database
from bench.generate import generate
from infra.db import StatementCounter, create_engine
from infra.pagination import encode_cursor
from infra.settings import Settings

TW_PORT, BASE_PORT = 18001, 18002
PAGE_FIELDS = (
    "name email phone lifecycleStage tier { code name } "
    "complaints(first: 3) { edges { node { subject status severity openedAt } } }"
)
PAGE = (
    "query($first: Int!, $after: String) { customers(first: $first, after: $after) { edges { cursor node { "
    + PAGE_FIELDS
    + " } } pageInfo { hasNextPage endCursor } } }"
)
CUSTOMER = """query($id: ID!) { customer(id: $id) { name email phone nationalId birthDate
  address { line1 line2 postalCode city country } tier { code }
  metrics { lifetimeSpend spend12m orders12m lastPurchaseAt }
  purchases(first: 5) { edges { node { externalId amount purchasedAt } } }
  complaints(first: 5) { edges { node { subject description status openedAt } } } } }"""
NPS = "{ reports { surveyScores(metric: NPS, groupBy: [TIER]) { tier answers score invitations responseRate } } }"
SLA = """{ reports { fairness { tiers { tier complaints breachedComplaints slaBreachRate
  medianFirstResponseMinutes medianResolutionMinutes } } } }"""
TIERS = "{ tierDistribution { customers tiers { tier customers } } }"
INGEST = """mutation($p: [PurchaseInput!]!) { recordPurchases(input: {purchases: $p})
  { insertedCount userErrors { code } } }"""
SCALES = {"quick": 20_000, "full": 1_000_000}


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (Debian package)…", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(wrk: str, url: str, script: str, duration: int, connections: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "120s", "--latency", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(rps, p50, p99, int(errs.group(1)) if errs else 0)


def lua_post(body: dict[str, Any], token: str) -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )


def lua_get() -> str:
    return 'wrk.method = "GET"\n'


def lua_ingest(token: str, customer_refs: list[str], batch: int, graphql: bool = True) -> str:
    """Batches of ``batch`` purchases over ``customer_refs``: a recordPurchases mutation, or (``graphql=False``)
    the baseline's plain JSON body; unique external ids per thread and request (prefix B, or X for the baseline)."""
    refs = ",".join(json.dumps(r) for r in customer_refs)
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if graphql else ""
    prefix = "B" if graphql else "X"
    if graphql:
        send = """  local q = "mutation($p: [PurchaseInput!]!) { recordPurchases(input: {purchases: $p}) "
    .. "{ insertedCount userErrors { code } } }"
  local body = '{"query":"' .. q .. '","variables":{"p":[' .. table.concat(items, ",") .. ']}}'
  return wrk.format(nil, nil, nil, body)"""
    else:
        send = """  return wrk.format(nil, nil, nil, '{"purchases":[' .. table.concat(items, ",") .. ']}')"""
    return f"""
local refs = {{{refs}}}
local n = 0
local thread_id = math.random(1, 1000000000)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}request = function()
  n = n + 1
  local items = {{}}
  for i = 1, {batch} do
    local ref = refs[((n * {batch} + i) % #refs) + 1]
    items[i] = string.format('{{"customerExternalRef":"%s","externalId":"{prefix}-%d-%d-%d","amount":"%d.50"}}',
      ref, thread_id, n, i, 5 + (i % 200))
  end
{send}
end
"""


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz" if port == TW_PORT else f"http://127.0.0.1:{port}/page?first=1",
                    timeout=1,
                )
                break
            if proc.poll() is not None:
                raise RuntimeError(f"server on {port} died: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def prepare(url: str, customers: int) -> dict[str, Any]:
    """Roles, tokens, ids and cursors the workloads need."""
    settings = Settings(_env_file=None, run_worker=False)  # type: ignore[call-arg]
    engine = create_engine(url, settings)
    async with engine.connect() as conn:
        for sub, role in (("bench-agent", "support_agent"), ("bench-admin", "admin"), ("bench-analyst", "analyst")):
            with contextlib.suppress(Exception):
                async with conn.begin_nested():
                    await admin.assign_role(conn, sub, role, actor="bench")
        token_id, partner_token, token_hash = new_partner_token()
        await admin.create_partner_token(
            conn,
            partner_name="Northwind Shop",
            name="bench",
            scopes=["read:*", "write:*"],
            role="partner",
            actor="bench",
            token_id=token_id,
            token_hash=token_hash,
            expires_at=None,
        )
        await conn.commit()
        partner_id = (await conn.execute(text("SELECT id FROM partners WHERE name = 'Northwind Shop'"))).scalar_one()
        refs = [
            r[0]
            for r in (
                await conn.execute(
                    text("SELECT external_ref FROM customers WHERE partner_id = :p ORDER BY id LIMIT 2000"),
                    {"p": partner_id},
                )
            ).all()
        ]
        deep_page = max(1, min(10_000, customers // 50 - 1))
        row = (
            await conn.execute(
                text(
                    "SELECT created_at, id FROM customers WHERE deleted_at IS NULL AND merged_into_id IS NULL "
                    "ORDER BY created_at, id OFFSET :o LIMIT 1"
                ),
                {"o": deep_page * 50 - 1},
            )
        ).one()
        one = (
            await conn.execute(
                text(
                    "SELECT c.id FROM customers c JOIN customer_metrics m ON m.customer_id = c.id "
                    "WHERE m.order_count > 5 ORDER BY c.id LIMIT 1"
                )
            )
        ).scalar_one()
    await engine.dispose()
    from api.ids import to_global_id

    return {
        "agent": issue_staff_token(settings, "bench-agent", ttl_s=86400),
        "analyst": issue_staff_token(settings, "bench-analyst", ttl_s=86400),
        "admin": issue_staff_token(settings, "bench-admin", ttl_s=86400),
        "partner": partner_token,
        "refs": refs,
        "deep_page": deep_page,
        "deep_cursor": encode_cursor("CREATED_AT", row.created_at, row.id),
        "customer_id": str(one),
        "customer_gid": to_global_id("Customer", one),
    }


async def statements(url: str, token: str, body: dict[str, Any]) -> int:
    settings = Settings(_env_file=None, run_worker=False, rate_limit_enabled=False)  # type: ignore[call-arg]
    app = create_app(settings, database_url=url)
    async with app.router.lifespan_context(app):
        engine = app.state.services["services"].engine
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
            headers = {"Authorization": f"Bearer {token}"}
            await client.post("/graphql", json=body, headers=headers)
            with StatementCounter(engine) as counter:
                r = await client.post("/graphql", json=body, headers=headers)
            assert r.status_code == 200, r.text
    return counter.count


async def drain_churn_jobs(url: str) -> tuple[int, float]:
    """Work the churn re-scores the ingest queued (their worker was off during the load): jobs, seconds."""
    from infra.churn import REFRESH_QUEUE, REFRESH_TASK
    from infra.jobs import JobDeps, create_job_app, registrars

    settings = Settings(_env_file=None, run_worker=False, statement_timeout_ms=0)  # type: ignore[call-arg]
    engine = create_engine(url, settings)
    try:
        jobs = create_job_app(url, JobDeps(engine=engine, settings=settings), registrars())
        async with jobs.open_async():
            count = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = :t AND status = 'todo'"
            async with engine.connect() as conn:
                todo = (await conn.execute(text(count), {"t": REFRESH_TASK})).scalar_one()
            start = time.perf_counter()
            await jobs.run_worker_async(
                queues=[REFRESH_QUEUE], wait=False, install_signal_handlers=False, concurrency=2
            )
            return int(todo), time.perf_counter() - start
    finally:
        await engine.dispose()


def _get(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[Any, int | None]:
    """One request: the JSON answer and the statements the server says it ran (baseline only)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=300) as r:
        count = r.headers.get("x-sql-statements")
        return json.loads(r.read()), int(count) if count else None


def _same(a: Any, b: Any) -> bool:
    """Equal JSON, numbers compared as numbers (``12.5`` and ``"12.50"`` are not the same; 1 and 1.0 are)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return abs(a - b) < 1e-9
    return bool(a == b)


async def dataset(customers: int) -> tuple[str, str]:
    """The generated data set (made once, reused) and a line on how it was made."""
    url = await migrated_database(f"tierwise_bench_{customers}")
    report = await generate(url, customers)
    counts = report.counts
    made = "reused" if report.reused else f"generated in {report.total_seconds:.0f} s"
    return url, (
        f"{counts['customers']:,} customers, {counts['purchases']:,} purchases, {counts['complaints']:,} complaints, "
        f"{counts['survey_answers']:,} survey answers ({made} by bench/generate.py)"
    )


def main(customers: int, duration: int, connections: int, workers: int = 1) -> str:
    wrk = ensure_wrk()
    url, shape = asyncio.run(dataset(customers))
    ctx = asyncio.run(prepare(url, customers))
    logs = Path(tempfile.mkdtemp(prefix="tierwise-bench-"))
    # Rate limits off: the benchmark measures throughput, not the limiter (its cost: see README, Operations).
    tw_env = {
        "TIERWISE_DATABASE_URL": url,
        "TIERWISE_RUN_WORKER": "false",
        "TIERWISE_DB_POOL_SIZE": "10",
        "TIERWISE_RATE_LIMIT_ENABLED": "false",
        "TIERWISE_STATEMENT_TIMEOUT_MS": "0",
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    if workers > 1:  # the same for both servers: each gets as many processes
        uvicorn += ["--workers", str(workers)]
    tw_cmd = [*uvicorn, "--factory", "api.app:create_app", "--port", str(TW_PORT)]
    base_cmd = [*uvicorn, "bench.baseline:app", "--port", str(BASE_PORT)]
    tw, base = f"http://127.0.0.1:{TW_PORT}/graphql", f"http://127.0.0.1:{BASE_PORT}"
    page = lambda first, after=None: {"query": PAGE, "variables": {"first": first, "after": after}}  # noqa: E731
    deep = f"page #{ctx['deep_page']:,} of 50 (admin, keyset cursor)"
    workloads: list[tuple[str, str, dict[str, Any], str]] = [
        # name, tierwise token key, tierwise body, baseline path
        ("page of 50, support agent (masked)", "agent", page(50), "/page?first=50&role=support_agent"),
        ("page of 50, admin", "admin", page(50), "/page?first=50"),
        (
            "one customer in full (admin)",
            "admin",
            {"query": CUSTOMER, "variables": {"id": ctx["customer_gid"]}},
            f"/customer/{ctx['customer_id']}",
        ),
        (deep, "admin", page(50, ctx["deep_cursor"]), f"/page?first=50&after={ctx['deep_cursor']}"),
        ("report: NPS by tier (analyst)", "analyst", {"query": NPS}, "/report/nps"),
        ("report: SLA by tier (fairness, analyst)", "analyst", {"query": SLA}, "/report/sla"),
        ("report: tier distribution (admin)", "admin", {"query": TIERS}, "/report/tiers"),
    ]
    results: list[tuple[str, Result, Result, int, int | None, bool]] = []
    with (
        server(tw_cmd, tw_env, TW_PORT, logs / "tierwise.log"),
        server(base_cmd, {"BENCH_DATABASE_URL": url}, BASE_PORT, logs / "baseline.log"),
    ):
        for name, who, body, path in workloads:
            sql = asyncio.run(statements(url, ctx[who], body))
            mine, _ = _get(tw, body, ctx[who])
            theirs, base_sql = _get(base + path)
            same = _same(mine, theirs)
            if not same:
                print(
                    f"{name}: the answers differ\n  tierwise {str(mine)[:600]}\n  baseline {str(theirs)[:600]}",
                    file=sys.stderr,
                )
            slow = name.startswith("report")  # seconds per request: fewer connections, longer runs
            conns, secs = (2, max(duration, 10)) if slow else (connections, duration)
            t = run_wrk(wrk, tw, lua_post(body, ctx[who]), secs, conns)
            b = run_wrk(wrk, base + path, lua_get(), secs, conns)
            results.append((name, t, b, sql, base_sql, same))
            print(f"{name}: tierwise {t.rps:.1f}/s, baseline {b.rps:.1f}/s", file=sys.stderr)
        items = [
            {"customerExternalRef": ref, "externalId": f"S-{time.time_ns()}-{i}", "amount": "10.50"}
            for i, ref in enumerate(ctx["refs"][:500])
        ]
        ingest_sql = asyncio.run(statements(url, ctx["partner"], {"query": INGEST, "variables": {"p": items}}))
        _, base_ingest_sql = _get(
            base + "/ingest", {"purchases": [{**i, "externalId": "b" + i["externalId"]} for i in items]}
        )
        secs = max(duration, 20)
        ingest = run_wrk(wrk, tw, lua_ingest(ctx["partner"], ctx["refs"], 500), secs, 2)
        base_ingest = run_wrk(wrk, base + "/ingest", lua_ingest("", ctx["refs"], 500, graphql=False), secs, 2)
        print(f"ingest: tierwise {ingest.rps * 500:.0f}/s, baseline {base_ingest.rps * 500:.0f}/s", file=sys.stderr)
    churn_jobs, churn_s = asyncio.run(drain_churn_jobs(url))
    processes = "one uvicorn process" if workers == 1 else f"{workers} uvicorn worker processes"
    lines = [
        "# Benchmark suite",
        "",
        f"Data: {shape}. wrk, 1 thread, {connections} connections ({duration} s) per workload, reports 2 "
        f"connections ({max(duration, 10)} s), loopback; {processes} each; PostgreSQL 15 on the same "
        f"machine. Machine: {machine()}. `python -m bench.suite --customers {customers}"
        f"{f' --workers {workers}' if workers > 1 else ''}`.",
        "",
        "| workload | tierwise req/s | p50 ms | p99 ms | baseline req/s | p50 ms | p99 ms | ratio | SQL/request "
        "(tierwise / baseline) | same JSON |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for name, t, b, sql, base_sql, same in results:
        lines.append(
            f"| {name} | {t.rps:.1f} | {t.p50_ms:.1f} | {t.p99_ms:.1f} | {b.rps:.1f} | {b.p50_ms:.1f} "
            f"| {b.p99_ms:.1f} | {t.rps / b.rps:.2f} | {sql} / {base_sql} | {'yes' if same else 'NO'} |"
        )
    lines.append(
        f"| ingest, batches of 500 (partner) | {ingest.rps:.1f} | {ingest.p50_ms:.0f} | {ingest.p99_ms:.0f} "
        f"| {base_ingest.rps:.1f} | {base_ingest.p50_ms:.0f} | {base_ingest.p99_ms:.0f} "
        f"| {ingest.rps / base_ingest.rps:.2f} | {ingest_sql} / {base_ingest_sql} | |"
    )
    first, deep_r = results[1][1], results[3][1]
    lines += [
        "",
        f"Ingest: **{ingest.rps * 500:,.0f} purchases/s** (baseline {base_ingest.rps * 500:,.0f}/s) with metrics and "
        f"tier updated in each request's transaction and the churn re-score queued as a job in it "
        f"({ingest.errors} non-2xx). The worker then re-scored the customers of the {churn_jobs:,} queued "
        f"batches in {churn_s:.1f} s ({churn_jobs * 500 / max(churn_s, 1e-9):,.0f} purchases/s).",
        "",
        f"Deep page vs first page (admin): {first.rps / deep_r.rps:.2f}x the time (goal ≤ 1.5).",
        "",
        "Reports (p50 per request, goal < 1 s): "
        + ", ".join(f"{name.removeprefix('report: ')} {t.p50_ms / 1000:.2f} s" for name, t, *_ in results[4:7])
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="quick", help="quick: 20 000, full: 1 000 000")
    parser.add_argument("--customers", type=int, default=None, help="overrides --scale")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of each server")
    args = parser.parse_args()
    report = main(args.customers or SCALES[args.scale], args.duration, args.connections, args.workers)
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / ("suite.md" if args.workers == 1 else f"suite_workers{args.workers}.md")).write_text(report)
    print(report)
