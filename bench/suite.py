"""The benchmark suite: tierwise against a raw Starlette + asyncpg baseline, in one run, under a real
HTTP load generator (wrk) on loopback. Prints a markdown table and writes bench/results/suite.md.

    python -m bench.suite [--customers 20000] [--duration 8] [--connections 8]

Both servers run as single uvicorn processes without access logs; wrk gets one thread. Ratios are
what to read: absolute figures depend on the machine and what else runs on it.
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
from bench.common import bench_database, machine
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
  address { line1 postalCode city country } tier { code } metrics { lifetimeSpend spend12m orders12m lastPurchaseAt }
  purchases(first: 5) { edges { node { externalId amount purchasedAt } } }
  complaints(first: 5) { edges { node { subject description status openedAt } } } } }"""


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
        [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name, url],
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


def lua_ingest(token: str, customer_refs: list[str], batch: int) -> str:
    refs = ",".join(json.dumps(r) for r in customer_refs)
    return f"""
local refs = {{{refs}}}
local n = 0
local thread_id = math.random(1, 1000000000)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  n = n + 1
  local items = {{}}
  for i = 1, {batch} do
    local ref = refs[((n * {batch} + i) % #refs) + 1]
    items[i] = string.format('{{"customerExternalRef":"%s","externalId":"B-%d-%d-%d","amount":"%d.50"}}',
      ref, thread_id, n, i, 5 + (i % 200))
  end
  local q = "mutation($p: [PurchaseInput!]!) {{ recordPurchases(input: {{purchases: $p}}) "
    .. "{{ insertedCount userErrors {{ code }} }} }}"
  local body = '{{"query":"' .. q .. '","variables":{{"p":[' .. table.concat(items, ",") .. ']}}}}'
  return wrk.format(nil, nil, nil, body)
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
        for sub, role in (("bench-agent", "support_agent"), ("bench-admin", "admin")):
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


def main(customers: int, duration: int, connections: int) -> str:
    wrk = ensure_wrk()
    url = asyncio.run(bench_database(f"tierwise_bench_{customers}", customers))
    ctx = asyncio.run(prepare(url, customers))
    logs = Path(tempfile.mkdtemp(prefix="tierwise-bench-"))
    # Rate limits off: the benchmark measures throughput, not the limiter (its cost: see README, Operations).
    tw_env = {
        "TIERWISE_DATABASE_URL": url,
        "TIERWISE_RUN_WORKER": "false",
        "TIERWISE_DB_POOL_SIZE": "10",
        "TIERWISE_RATE_LIMIT_ENABLED": "false",
    }
    tw_cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:create_app",
        "--port",
        str(TW_PORT),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    base_cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.baseline:app",
        "--port",
        str(BASE_PORT),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    tw, base = f"http://127.0.0.1:{TW_PORT}/graphql", f"http://127.0.0.1:{BASE_PORT}"
    page = lambda first, after=None: {"query": PAGE, "variables": {"first": first, "after": after}}  # noqa: E731
    workloads: list[tuple[str, str, dict[str, Any] | None, str | None, str]] = [
        # name, tierwise token key, tierwise body, baseline path, description
        ("page of 50, support agent (masked)", "agent", page(50), "/page?first=50&role=support_agent", ""),
        ("page of 50, admin", "admin", page(50), "/page?first=50", ""),
        (
            "one customer in full (admin)",
            "admin",
            {"query": CUSTOMER, "variables": {"id": ctx["customer_gid"]}},
            f"/customer/{ctx['customer_id']}",
            "",
        ),
        (
            f"deep page #{ctx['deep_page']} (admin)",
            "admin",
            page(50, ctx["deep_cursor"]),
            f"/page?first=50&after={ctx['deep_cursor']}",
            "",
        ),
    ]
    results: list[tuple[str, Result, Result | None, int]] = []
    with (
        server(tw_cmd, tw_env, TW_PORT, logs / "tierwise.log"),
        server(base_cmd, {"BENCH_DATABASE_URL": url}, BASE_PORT, logs / "baseline.log"),
    ):
        for name, who, body, path, _ in workloads:
            assert body is not None
            sql = asyncio.run(statements(url, ctx[who], body))
            t = run_wrk(wrk, tw, lua_post(body, ctx[who]), duration, connections)
            b = run_wrk(wrk, base + (path or ""), lua_get(), duration, connections) if path else None
            results.append((name, t, b, sql))
            print(f"{name}: tierwise {t.rps:.0f}/s" + (f", baseline {b.rps:.0f}/s" if b else ""), file=sys.stderr)
        ingest = run_wrk(wrk, tw, lua_ingest(ctx["partner"], ctx["refs"], 500), duration, 2)
    lines = [
        "# Benchmark suite",
        "",
        f"{customers} customers (seeded: ~10 purchases each, complaints, surveys); wrk, 1 thread, "
        f"{connections} connections, {duration} s per workload, loopback; one uvicorn process each. "
        f"Machine: {machine()}.",
        "",
        "| workload | tierwise req/s | p50 ms | p99 ms | baseline req/s | p50 ms | p99 ms | ratio | SQL/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t, b, sql in results:
        if b:
            lines.append(
                f"| {name} | {t.rps:.0f} | {t.p50_ms:.1f} | {t.p99_ms:.1f} | {b.rps:.0f} | {b.p50_ms:.1f} "
                f"| {b.p99_ms:.1f} | {t.rps / b.rps:.2f} | {sql} |"
            )
    lines.append(
        f"| ingest, batches of 500 (partner) | {ingest.rps:.1f} | {ingest.p50_ms:.0f} | {ingest.p99_ms:.0f} "
        f"| — | | | — | — |"
    )
    lines += [
        "",
        f"Ingest: **{ingest.rps * 500:.0f} purchases/s** with metrics and tier updated in each "
        f"request's transaction ({ingest.errors} non-2xx).",
        "",
    ]
    first, deep = results[1][1], results[3][1]
    lines.append(f"Deep page vs first page (admin): {first.rps / deep.rps:.2f}x the time (goal ≤ 1.5).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    report = main(args.customers, args.duration, args.connections)
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / "suite.md").write_text(report)
    print(report)
