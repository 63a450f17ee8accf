"""The cost of access control: a page of 100 customers as a support agent (masked contact fields,
denied fields refused), against the same query served with the enforcement layer taken out —
no field guards, every decision FULL, no masking. That variant is built here only.

    python -m bench.access_overhead [--customers 3000] [--rounds 8] [--per-round 25]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from api.edge.app import create_app
from api.edge.auth import issue_staff_token
from api.graphql import schema as schema_module
from authz import admin
from authz.catalogue import CATALOGUE
from authz.policy import Level
from bench.common import bench_database, interleaved, machine
from infra.db import StatementCounter
from infra.settings import Settings

QUERY = """
query Page($first: Int!) {
  customers(first: $first) {
    edges { node {
      id name email phone address { city } lifecycleStage tier { code name }
      metrics { orders12m lastPurchaseAt }
      complaints(first: 3) { edges { node { subject status severity openedAt } } }
    } }
  }
}
"""


class AllFull:
    """Decisions of a world without access control: everything readable and writable in full."""

    policy_version = 0
    levels = dict.fromkeys(CATALOGUE, Level.FULL)

    def __init__(self) -> None:
        self.memo: dict[str, Any] = {}

    def read(self, key: str) -> Level:
        return Level.FULL

    def can_write(self, key: str) -> bool:
        return True


@contextlib.asynccontextmanager
async def client_for(url: str, settings: Settings, *, enforced: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database_url=url)
    async with app.router.lifespan_context(app):
        services = app.state.services["services"]
        if not enforced:
            all_full = AllFull()  # one per role set, as the policy store keeps them
            services.authz.store.decisions_for = lambda roles, scopes, confined=False: all_full
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            client.services = services  # type: ignore[attr-defined]
            if not enforced:  # the first request builds the schema: build it without guards
                with mock.patch.object(schema_module, "install_guards", return_value=[]):
                    await client.post("/graphql", json={"query": "{ __typename }"})
            yield client


async def main(customers: int, rounds: int, per_round: int) -> str:
    url = await bench_database(f"tierwise_bench_{customers}", customers)
    # rate limits on, the budget raised (as in bench/suite.py)
    settings = Settings(_env_file=None, rate_limit_user_per_minute=1_000_000_000)  # type: ignore[call-arg]
    async with client_for(url, settings, enforced=True) as guarded:
        async with guarded.services.engine.connect() as conn:  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                await admin.assign_role(conn, "bench-agent", "support_agent", actor="bench")
            await conn.commit()
        await guarded.services.authz.reload()  # type: ignore[attr-defined]
        token = issue_staff_token(settings, "bench-agent")
        headers = {"Authorization": f"Bearer {token}"}
        body = {"query": QUERY, "variables": {"first": 100}}
        async with client_for(url, settings, enforced=False) as open_:

            async def call(client: httpx.AsyncClient) -> Any:
                r = await client.post("/graphql", json=body, headers=headers)
                data = r.json()
                assert r.status_code == 200, data
                assert data["data"]["customers"], data
                return data

            sample_g, sample_o = await call(guarded), await call(open_)
            node_g = sample_g["data"]["customers"]["edges"][0]["node"]
            node_o = sample_o["data"]["customers"]["edges"][0]["node"]
            assert "*" in (node_g["phone"] or "*"), "the support agent must see masked phones"
            assert "*" not in (node_o["phone"] or ""), "without access control phones are plain"
            counts = {}
            for name, client in (("with access control", guarded), ("without", open_)):
                with StatementCounter(client.services.engine) as counter:  # type: ignore[attr-defined]
                    await call(client)
                counts[name] = counter.count
            timings = await interleaved(
                {"with access control": lambda: call(guarded), "without": lambda: call(open_)}, rounds, per_round
            )
    g, o = timings["with access control"], timings["without"]
    ratio = g.mean_ms / o.mean_ms
    lines = [
        "# Access-control overhead",
        "",
        f"Page of 100 customers with masked contact fields and their last 3 complaints, as support_agent; "
        f"{customers} customers seeded; {rounds}x{per_round} requests each, interleaved, in-process ASGI. "
        f"Machine: {machine()}.",
        "",
        "| variant | mean ms | p50 ms | p99 ms | req/s | SQL statements |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, t in timings.items():
        cells = [name, f"{t.mean_ms:.1f}", f"{t.pct_ms(0.5):.1f}", f"{t.pct_ms(0.99):.1f}", f"{t.per_s:.1f}"]
        lines.append("| " + " | ".join([*cells, str(counts[name])]) + " |")
    lines += ["", f"**Overhead of access control: {100 * (ratio - 1):+.1f}%** (ratio {ratio:.3f}; goal < 10%)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=25)
    args = parser.parse_args()
    report = asyncio.run(main(args.customers, args.rounds, args.per_round))
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / "access_overhead.md").write_text(report)
    print(report)
