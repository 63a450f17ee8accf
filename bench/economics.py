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
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import machine, migrated_database
from bench.generate import generate
from bench.retier import client
from infra import metrics
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
    lines += ["", "The report's statement (EXPLAIN ANALYZE, BUFFERS):", "", "```", r["plan"], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--ingest-batches", type=int, default=10)
    args = parser.parse_args()
    result = asyncio.run(run(args.customers, args.rounds, args.days, args.ingest_batches))
    text_md = markdown(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text_md, encoding="utf-8")
    print(text_md)
