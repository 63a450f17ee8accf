"""The GraphQL hot path, in-process: req/s of the benchmark's read workloads against one app, and an
optional pyinstrument profile of one of them.

    python -m bench.profile_hot [--customers 3000] [--seconds 5] [--concurrency 8] [--profile agent]
                                [--compiled both|on|off]
    python -m bench.profile_hot --interleaved 8     # before / document cache / compiled, side by side

The app runs in this process (httpx's ASGI transport, the whole middleware stack: edge, auth, limits,
GraphQL); ``--concurrency`` requests are kept in flight. Rate limits are on, the callers' budget raised
(as in bench/suite.py; the limiter's own cost: bench/request_path.py). The same queries as
bench/suite.py, so figures compare. ``--interleaved`` writes
bench/results/profile_hot.md. CPU milliseconds are this process's (app and client), not PostgreSQL's:
on a machine shared with other work they move less than wall-clock figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from bench.suite import BENCH_USER_BUDGET, CUSTOMER, PAGE
from infra.db import StatementCounter
from infra.settings import Settings


def _settings(compiled: bool) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, run_worker=False, rate_limit_user_per_minute=BENCH_USER_BUDGET, compiled_queries=compiled
    )


@contextlib.asynccontextmanager
async def client_for(url: str, compiled: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(compiled), database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            client.services = app.state.services["services"]  # type: ignore[attr-defined]
            client.asgi_app = app  # type: ignore[attr-defined]
            yield client


async def prepare(url: str) -> dict[str, Any]:
    settings = _settings(False)
    from sqlalchemy import text

    from api.graphql.core.ids import to_global_id
    from infra.db import create_engine

    engine = create_engine(url, settings)
    async with engine.connect() as conn:
        for sub, role in (("prof-agent", "support_agent"), ("prof-admin", "admin")):
            with contextlib.suppress(Exception):
                async with conn.begin_nested():
                    await admin.assign_role(conn, sub, role, actor="bench")
        await conn.commit()
        one = (
            await conn.execute(
                text(
                    "SELECT c.id FROM customers c JOIN customer_metrics m ON m.customer_id = c.id "
                    "WHERE m.order_count > 5 ORDER BY c.id LIMIT 1"
                )
            )
        ).scalar_one()
    await engine.dispose()
    return {
        "agent": issue_staff_token(settings, "prof-agent", ttl_s=86400),
        "admin": issue_staff_token(settings, "prof-admin", ttl_s=86400),
        "customer_gid": to_global_id("Customer", one),
    }


def workloads(ctx: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    page = {"query": PAGE, "variables": {"first": 50, "after": None}}
    return {
        "agent": (ctx["agent"], page),
        "admin": (ctx["admin"], page),
        "customer": (ctx["admin"], {"query": CUSTOMER, "variables": {"id": ctx["customer_gid"]}}),
    }


async def load(
    client: httpx.AsyncClient, token: str, body: dict[str, Any], seconds: float, concurrency: int
) -> tuple[float, float]:
    """Requests per second (wall clock) and this process's CPU milliseconds per request (the app and the
    client share the process; PostgreSQL's time is not in it): CPU time is what a busy machine distorts least."""
    headers = {"Authorization": f"Bearer {token}"}
    done = 0
    stop = time.perf_counter() + seconds
    cpu = time.process_time()

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            r = await client.post("/graphql", json=body, headers=headers)
            assert r.status_code == 200, r.text
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / max(done, 1)


async def main(customers: int, seconds: float, concurrency: int, profile: str | None, modes: list[bool]) -> str:
    url = await bench_database(f"tierwise_profile_{customers}", customers)
    ctx = await prepare(url)
    lines = [
        f"In-process ASGI, {customers} customers, {concurrency} in flight, {seconds:.0f} s per workload. "
        f"Machine: {machine()}.",
        "",
        "| workload | compiled | req/s | wall ms/request | CPU ms/request | SQL statements | response bytes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for compiled in modes:
        async with client_for(url, compiled) as client:
            for name, (token, body) in workloads(ctx).items():
                headers = {"Authorization": f"Bearer {token}"}
                for _ in range(5):  # warm-up: caches, pool, JIT of the plan
                    r = await client.post("/graphql", json=body, headers=headers)
                with StatementCounter(client.services.engine) as counter:  # type: ignore[attr-defined]
                    r = await client.post("/graphql", json=body, headers=headers)
                rps, cpu_ms = await load(client, token, body, seconds, concurrency)
                lines.append(
                    f"| {name} | {'on' if compiled else 'off'} | {rps:.0f} | {1000 / rps:.1f} | {cpu_ms:.1f} "
                    f"| {counter.count} | {len(r.content)} |"
                )
                print(lines[-1], flush=True)
            if profile:
                from pyinstrument import Profiler

                token, body = workloads(ctx)[profile]
                profiler = Profiler(async_mode="enabled")
                with profiler:
                    await load(client, token, body, seconds, 1)
                path = f"/tmp/profile_{profile}_{'compiled' if compiled else 'strawberry'}.txt"
                Path(path).write_text(profiler.output_text(unicode=False, color=False, show_all=False))  # noqa: ASYNC240
                print(f"profile written to {path}")
    return "\n".join(lines) + "\n"


def _without_document_cache(client: httpx.AsyncClient) -> None:
    """The app as it was before the document cache: every request parses and validates its query."""
    routes = client.asgi_app.routes  # type: ignore[attr-defined]
    route = next(r for r in routes if getattr(r, "path", None) == "/graphql")
    for extension in route.endpoint._app.app.schema.extensions:
        documents = getattr(extension, "keywords", {}).get("documents")
        if documents is not None:
            documents.get = lambda _query: None


async def interleaved_main(customers: int, rounds: int, per_round: int) -> str:
    """Three variants in one process — strawberry without the document cache (as before issue 7),
    strawberry with it, the compiled executor — in alternating rounds of sequential requests (one in
    flight), so that whatever else runs on the machine hits all alike; medians per request."""
    url = await bench_database(f"tierwise_profile_{customers}", customers)
    ctx = await prepare(url)
    names = ("before", "document cache", "compiled")
    lines = [
        f"In-process ASGI, {customers} customers, one request in flight, {rounds} interleaved rounds of "
        f"{per_round} requests per variant and workload; medians. Machine: {machine()}.",
        "",
        "| workload | " + " | ".join(f"{n} wall ms | {n} CPU ms" for n in names) + " | CPU speed-up |",
        "|---|" + "---:|" * (2 * len(names) + 1),
    ]
    async with (
        client_for(url, False) as before,
        client_for(url, False) as cached,
        client_for(url, True) as compiled,
    ):
        clients = (before, cached, compiled)
        for name, (token, body) in workloads(ctx).items():
            headers = {"Authorization": f"Bearer {token}"}
            for client in clients:
                for _ in range(3):
                    await client.post("/graphql", json=body, headers=headers)
            _without_document_cache(before)
            samples: list[tuple[list[float], list[float]]] = [([], []) for _ in clients]
            for _ in range(rounds):
                for i, client in enumerate(clients):
                    for _ in range(per_round):
                        wall, cpu = time.perf_counter(), time.process_time()
                        r = await client.post("/graphql", json=body, headers=headers)
                        samples[i][0].append((time.perf_counter() - wall) * 1000)
                        samples[i][1].append((time.process_time() - cpu) * 1000)
                        assert r.status_code == 200, r.text
            med = [(statistics.median(w), statistics.median(c)) for w, c in samples]
            cells = " | ".join(f"{w:.1f} | {c:.1f}" for w, c in med)
            lines.append(f"| {name} | {cells} | {med[0][1] / med[2][1]:.2f}x |")
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", choices=["agent", "admin", "customer"], default=None)
    parser.add_argument("--compiled", choices=["both", "on", "off"], default="both")
    parser.add_argument("--interleaved", type=int, metavar="ROUNDS", default=0, help="compare both paths instead")
    args = parser.parse_args()
    if args.interleaved:
        report = asyncio.run(interleaved_main(args.customers, args.interleaved, 10))
        Path(__file__).with_name("results").joinpath("profile_hot.md").write_text("# The GraphQL hot path\n\n" + report)
        print(report)
    else:
        modes = {"both": [False, True], "on": [True], "off": [False]}[args.compiled]
        print(asyncio.run(main(args.customers, args.seconds, args.concurrency, args.profile, modes)))
