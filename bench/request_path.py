"""What a request costs outside execution: the support-agent page in-process, with rate limits on
(production defaults, the principal's budget raised) and off, and a cProfile of where the time goes.

    python -m bench.request_path [--customers 3000] [--rounds 6] [--per-round 20] [--profile 200]

Two apps over one database run in this process (httpx's ASGI transport, the whole middleware stack),
taking turns in rounds of sequential requests (one in flight), so drift on a shared machine hits both
alike. Reported: this process's CPU ms per request (median of rounds; app and client share it), the
PostgreSQL backends' CPU ms per request (over all rounds), and the limiter's own figures (statements
sent). Then ``--profile`` requests with the limiter on under cProfile, summed by part of the request
path (each part's cumulative time per request: parts nest, e.g. the limits include the rate limiter).
Writes bench/results/request_path.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from api.edge.app import create_app
from api.edge.auth import issue_staff_token
from authz import admin
from bench.common import bench_database, machine
from bench.peers import Meter
from bench.suite import PAGE
from infra.settings import Settings

BUDGET = 1_000_000_000  # points a minute for the bench's staff users: the limiter runs, nobody is refused

# (label, file suffix, function name): parts of the request path, by the function that does each
PARTS = [
    ("whole request (HTTP edge and below)", "api/edge/app.py", "__call__"),
    ("HTTP edge: access log line and metrics", "api/edge/app.py", "_record"),
    ("authentication (JWT verify, roles)", "api/edge/auth.py", "authenticate"),
    ("request body: JSON decode and checks", "api/edge/app.py", "parse_http_body"),
    ("parse (graphql-core)", "graphql/language/parser.py", "parse"),
    ("validate (graphql-core)", "graphql/validation/validate.py", "validate"),
    ("limits before execution (strings, cost, rate limit)", "api/edge/limits.py", "on_execute"),
    ("cost estimate", "api/edge/limits.py", "estimate_cost"),
    ("rate limiter (charge)", "api/edge/ratelimit.py", "charge"),
    ("context (principal's decisions, loaders)", "api/edge/app.py", "get_context"),
    ("response: result to JSON", "api/edge/app.py", "process_result"),
    ("response: JSON encoding (orjson)", "api/edge/app.py", "encode_json"),
    ("audit extension and connection release", "api/edge/app.py", "on_operation"),
    ("connection release (RequestDb.close)", "infra/db.py", "close"),
]


def _settings(limited: bool) -> Settings:
    extra: dict[str, Any] = {"rate_limit_user_per_minute": BUDGET}
    return Settings(_env_file=None, run_worker=False, rate_limit_enabled=limited, **extra)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def client_for(url: str, limited: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(limited), database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            client.services = app.state.services["services"]  # type: ignore[attr-defined]
            yield client


async def prepare(url: str) -> str:
    from infra.db import create_engine

    settings = _settings(False)
    engine = create_engine(url, settings)
    async with engine.connect() as conn:
        with contextlib.suppress(Exception):
            async with conn.begin_nested():
                await admin.assign_role(conn, "path-agent", "support_agent", actor="bench")
        await conn.commit()
    await engine.dispose()
    return issue_staff_token(settings, "path-agent", ttl_s=86400)


def _parts(profile: cProfile.Profile, requests: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile, stream=io.StringIO())
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    out = []
    for label, suffix, name in PARTS:
        total = 0.0
        for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in raw.items():
            if func == name and filename.endswith(suffix):
                # the whole: the outermost __call__ (HttpEdge's); the others are summed
                total = max(total, ct) if label.startswith("whole") else total + ct
        out.append((label, total * 1000 / requests))
    return out


async def limiter_alone(url: str, database: str, rounds: int, per_round: int) -> list[str]:
    """The limiter by itself: ``charge`` on an open connection, a statement per charge (a lease
    fraction of 0: what every request paid before leases) against leased slices (the default)."""
    from sqlalchemy import text

    from api.edge.ratelimit import RateLimiter
    from authz.principal import Principal, PrincipalKind
    from infra.db import RequestDb, create_engine

    base = _settings(True)
    engine = create_engine(url, base)
    variants = {
        "a statement per charge (fraction 0, as before leases)": 0.0,
        f"leased slices (fraction {base.rate_limit_lease_fraction})": base.rate_limit_lease_fraction,
    }
    cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
    db_cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
    trips: dict[str, int] = dict.fromkeys(variants, 0)
    limiters = {
        name: RateLimiter(base.model_copy(update={"rate_limit_lease_fraction": f})) for name, f in variants.items()
    }
    db = RequestDb(engine.connect)
    try:
        await db.execute(text("SELECT 1"))  # the connection is open: only the charge is measured
        for _ in range(rounds):
            for i, (name, limiter) in enumerate(limiters.items()):
                principal = Principal(PrincipalKind.USER, f"bench-limiter-{i}")
                meter = Meter(os.getpid(), database)
                meter.start()
                started = time.process_time()
                for _ in range(per_round):
                    assert (await limiter.charge(db, principal, 500)).allowed
                cpu[name] += time.process_time() - started
                db_cpu[name] += meter.stop()[1]
        trips = {name: limiter.round_trips for name, limiter in limiters.items()}
    finally:
        await db.close()
        await engine.dispose()
    n = rounds * per_round
    lines = [
        f"## The rate limiter alone ({n} charges of 500 points per variant, interleaved, on an open connection)",
        "",
        "| variant | CPU ms/charge here | PostgreSQL CPU ms/charge | statements |",
        "|---|---:|---:|---:|",
    ]
    for name in variants:
        lines.append(f"| {name} | {cpu[name] * 1000 / n:.3f} | {db_cpu[name] * 1000 / n:.3f} | {trips[name]} |")
    return lines


async def main(customers: int, rounds: int, per_round: int, profile_n: int, database: str | None = None) -> str:
    url = await bench_database(database or f"tierwise_profile_{customers}", customers)
    database = url.rsplit("/", 1)[1].split("?")[0]
    alone = await limiter_alone(url, database, rounds, 100)
    token = await prepare(url)
    body = {"query": PAGE, "variables": {"first": 50, "after": None}}
    headers = {"Authorization": f"Bearer {token}"}
    async with client_for(url, True) as on, client_for(url, False) as off:
        variants = {"rate limits on": on, "rate limits off": off}
        for client in variants.values():
            for _ in range(5):
                r = await client.post("/graphql", json=body, headers=headers)
                assert r.status_code == 200, r.text
        cpu: dict[str, list[float]] = {n: [] for n in variants}
        db: dict[str, float] = dict.fromkeys(variants, 0.0)
        done: dict[str, int] = dict.fromkeys(variants, 0)
        limiter = on.services.limiter  # type: ignore[attr-defined]
        trips_before = limiter.round_trips if hasattr(limiter, "round_trips") else None
        for r_ in range(rounds):
            order = list(variants.items())
            if r_ % 2:
                order.reverse()
            for name, client in order:
                meter = Meter(os.getpid(), database)
                meter.start()
                started = time.process_time()
                for _ in range(per_round):
                    r = await client.post("/graphql", json=body, headers=headers)
                    assert r.status_code == 200, r.text
                cpu[name].append((time.process_time() - started) * 1000 / per_round)
                db[name] += meter.stop()[1]
                done[name] += per_round
        trips = (limiter.round_trips - trips_before) if trips_before is not None else None
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(profile_n):
            r = await on.post("/graphql", json=body, headers=headers)
        profile.disable()
    lines = [
        "# The request path outside execution",
        "",
        f"In-process ASGI, {customers:,} customers, the support-agent page of 50, one request in flight, "
        f"{rounds} interleaved rounds of {per_round} requests per variant; production defaults (rate limits on, "
        f"the agent's budget raised to {BUDGET:,} points a minute) against the same app with rate limits off. "
        f"Machine: {machine()}, load average {os.getloadavg()[0]:.1f}. `python -m bench.request_path`.",
        "",
        "| variant | CPU ms/request here (median of rounds) | PostgreSQL CPU ms/request |",
        "|---|---:|---:|",
    ]
    for name in variants:
        lines.append(f"| {name} | {statistics.median(cpu[name]):.2f} | {db[name] * 1000 / done[name]:.3f} |")
    diff = statistics.median(cpu["rate limits on"]) - statistics.median(cpu["rate limits off"])
    db_diff = (db["rate limits on"] - db["rate limits off"]) * 1000 / done["rate limits on"]
    lines += [
        "",
        f"The rate limiter's cost per request: {diff:+.2f} ms CPU here, {db_diff:+.3f} ms in PostgreSQL"
        + (f"; {trips} statements for {done['rate limits on']} requests." if trips is not None else "."),
        "",
        *alone,
        "",
        f"## Where a request's time goes (cProfile, {profile_n} requests with rate limits on)",
        "",
        "Cumulative time per request of the function that does each part; parts nest (the limits include the "
        "rate limiter and the cost estimate). cProfile slows everything down alike: read the shares.",
        "",
        "| part | ms/request | share of the whole |",
        "|---|---:|---:|",
    ]
    parts = _parts(profile, profile_n)
    whole = parts[0][1] or 1.0
    for label, ms in parts:
        lines.append(f"| {label} | {ms:.3f} | {ms / whole:.1%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--profile", type=int, default=200)
    parser.add_argument("--database", default=None, help="default tierwise_profile_<customers>")
    parser.add_argument("--out", default=None, help="write the report here (default bench/results/request_path.md)")
    args = parser.parse_args()
    report = asyncio.run(main(args.customers, args.rounds, args.per_round, args.profile, args.database))
    out = Path(args.out) if args.out else Path(__file__).with_name("results") / "request_path.md"
    out.write_text(report)
    print(report)
