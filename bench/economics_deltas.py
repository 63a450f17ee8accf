"""The economics report with deltas waiting (migration 0024): the report's statement timed with ``--deltas``
delta rows not compacted yet, then after the compaction that folds them in, on the benchmark data of
bench/generate.py.

    python -m bench.economics_deltas [--customers 20000] [--database NAME] [--deltas 10000] [--rounds 7]
                                     [--days 90] [--writer-batches 5]

The deltas are made as writers make them: ``--deltas`` purchases of live customers, one INSERT each (each
statement's trigger appends one delta row per summary key it touches: one here), spread over the last
``--days`` days, the tiers and the partners. The statement (``tierEconomics`` for the last ``--days`` days,
staff scope) runs ``--rounds`` times after one warm-up in each state, and returns the same totals in both
(but the handling hours of the complaints open now, counted until now()). The compaction is timed, as is a
compaction with nothing to move. Then two writers of one summary key (today, one tier, one partner) write
``--writer-batches`` transactions each, one after the other and then at once (each transaction one INSERT of
500 purchases, then HOLD_S of other work before its commit, as an ingest batch re-tiers its customers).

The purchases are deleted afterwards and compacted away, so the data set is left as it was:
``tierwise_bench_<N>`` by default (made by bench/generate.py if missing, shared with bench/economics.py), or
``--database``. Writes bench/results/economics_deltas.md.

Absolute figures depend on the machine and what else runs on it: the file says what it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.common import machine, migrated_database
from bench.generate import generate
from infra import economics
from infra.db import create_engine
from infra.repos import economics as economics_repo
from infra.repos.base import ALL
from infra.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "economics_deltas.md"
LIVE = "deleted_at IS NULL AND merged_into_id IS NULL"
BATCH = 500
HOLD_S = 0.2  # what an ingest batch does after its inserts, before it commits (re-tier, churn): a sleep here


async def _report(conn: AsyncConnection, since: dt.datetime, until: dt.datetime, rounds: int) -> dict[str, Any]:
    """The statement's median and best time, its totals, and its plan's lines on the deltas."""
    totals = await economics_repo.tier_totals(conn, since, until, ALL)  # warm-up
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        got = await economics_repo.tier_totals(conn, since, until, ALL)
        samples.append(time.perf_counter() - t0)
        assert got == totals
    sql, params = economics_repo._statement(since, until, ALL)
    plan = list((await conn.execute(text("EXPLAIN (ANALYZE) " + sql), params)).scalars())
    return {
        "median_s": statistics.median(samples),
        "best_s": min(samples),
        "totals": sorted(totals, key=lambda t: t.tier or ""),
        "plan": [line.strip() for line in plan if "_deltas" in line or "Execution Time" in line],
    }


async def _pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        sql = "SELECT (SELECT count(*) FROM economics_day_deltas) + (SELECT count(*) FROM economics_reach_deltas)"
        return int((await conn.execute(text(sql))).scalar_one())


async def _compact(engine: AsyncEngine) -> tuple[int, float]:
    t0 = time.perf_counter()
    moved = await economics.compact(engine)
    assert moved is not None, "another compaction is running on this database"
    return moved, time.perf_counter() - t0


async def two_writers(url: str, batches: int, size: int) -> dict[str, Any]:
    """Two writers of today's purchases for customers of one tier and partner (the most common pair), each
    ``batches`` transactions of one INSERT of ``size`` purchases that go on for HOLD_S before they commit:
    their time one after the other, then at once. The purchases are deleted afterwards."""
    conns = [await asyncpg.connect(url.replace("+asyncpg", "")) for _ in range(2)]
    made: list[uuid.UUID] = []
    try:
        tier, partner = await conns[0].fetchrow(
            f"SELECT tier_code, partner_id FROM customers WHERE {LIVE} AND tier_code IS NOT NULL"
            " AND partner_id IS NOT NULL GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"
        )
        ids = await conns[0].fetchval(
            f"SELECT array_agg(id) FROM (SELECT id FROM customers WHERE {LIVE} AND tier_code = $1"
            " AND partner_id = $2 ORDER BY id LIMIT $3) c",
            tier,
            partner,
            2 * size,
        )
        halves = ids[: len(ids) // 2], ids[len(ids) // 2 :]

        async def write(conn: asyncpg.Connection, customers: list[uuid.UUID]) -> None:
            for _ in range(batches):
                purchases = [uuid.uuid4() for _ in customers]
                made.extend(purchases)
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO purchases (id, customer_id, partner_id, amount, currency, purchased_at)"
                        " SELECT p, c, $3, 9.99, 'EUR', now() FROM unnest($1::uuid[], $2::uuid[]) u(p, c)",
                        purchases,
                        customers,
                        partner,
                    )
                    await conn.execute("SELECT pg_sleep($1)", HOLD_S)

        t0 = time.perf_counter()
        for conn, customers in zip(conns, halves, strict=True):
            await write(conn, customers)
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        await asyncio.gather(*(write(conn, customers) for conn, customers in zip(conns, halves, strict=True)))
        concurrent = time.perf_counter() - t0
    finally:
        await conns[0].execute("DELETE FROM purchases WHERE id = ANY($1::uuid[])", made)
        for conn in conns:
            await conn.close()
    return {"batches": batches, "size": len(halves[0]), "serial_s": serial, "concurrent_s": concurrent}


async def run(
    customers: int,
    deltas: int,
    rounds: int,
    days: int,
    *,
    writer_batches: int = 5,
    url: str | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """The figures (``url``: a migrated database to fill or reuse instead of ``tierwise_bench_<customers>``)."""
    url = url or await migrated_database(f"tierwise_bench_{customers}")
    await generate(url, customers, workers=workers, progress=workers > 0)
    until = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    since = until - dt.timedelta(days=days)
    engine = create_engine(url, Settings(_env_file=None))  # type: ignore[call-arg]
    out: dict[str, Any] = {"customers": customers, "days": days, "rounds": rounds}
    ids: list[Any] = []
    try:
        out["already_pending"], _ = await _compact(engine)  # start from none pending
        async with engine.connect() as conn:
            out["summary_rows"] = (await conn.execute(text("SELECT count(*) FROM economics_days"))).scalar_one()
            live = (await conn.execute(text(f"SELECT id, partner_id FROM customers WHERE {LIVE}"))).all()
        rng = random.Random(15)
        now = dt.datetime.now(dt.UTC)
        rows = [
            {
                "id": uuid.uuid4(),
                "c": c.id,
                "p": c.partner_id,
                "at": now - dt.timedelta(seconds=rng.randrange(days * 86400)),
            }
            for c in (rng.choice(live) for _ in range(deltas))
        ]
        t0 = time.perf_counter()
        async with engine.begin() as conn:  # one INSERT per purchase (executemany): a delta row each
            await conn.execute(
                text(
                    "INSERT INTO purchases (id, customer_id, partner_id, amount, currency, purchased_at)"
                    " VALUES (:id, :c, :p, 9.99, 'EUR', :at)"
                ),
                rows,
            )
        ids = [r["id"] for r in rows]
        out["insert_s"] = time.perf_counter() - t0
        out["pending"] = await _pending(engine)
        async with engine.connect() as conn:
            out["with_deltas"] = w = await _report(conn, since, until, rounds)
        out["moved"], out["compact_s"] = await _compact(engine)
        out["compact_empty_s"] = (await _compact(engine))[1]
        async with engine.connect() as conn:
            out["compacted"] = c = await _report(conn, since, until, rounds)
        # the same sums (the hours of the complaints open now grew meanwhile: they count until now())
        same = [[dataclasses.replace(t, complaint_hours=0) for t in r["totals"]] for r in (w, c)]
        assert same[0] == same[1], "compaction changed the report"
        out["writers"] = await two_writers(url, writer_batches, BATCH)
    finally:
        if ids:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM purchases WHERE id = ANY(:ids)"), {"ids": ids})
        await _compact(engine)
        await engine.dispose()
    out["load"] = os.getloadavg()[0]
    return out


def markdown(r: dict[str, Any]) -> str:
    w, c, wr = r["with_deltas"], r["compacted"], r["writers"]
    lines = [
        f"# The economics report with deltas waiting (bench/economics_deltas.py, {r['customers']:,} customers)",
        "",
        f"Machine: {machine()}, load average {r['load']:.1f} at the end (other work on the machine counts).",
        "",
        f"{r['pending']:,} delta rows pending ({r['pending']:,} purchases inserted one statement each, spread over "
        f"the last {r['days']} days, in {r['insert_s']:.1f} s), {r['summary_rows']:,} summary rows. The report's "
        f"statement for the last {r['days']} days (staff scope), median of {r['rounds']} after a warm-up (best):",
        "",
        "| state | report statement |",
        "|---|---:|",
        f"| {r['pending']:,} deltas pending | {w['median_s'] * 1000:,.1f} ms ({w['best_s'] * 1000:,.1f} ms) |",
        f"| compacted | {c['median_s'] * 1000:,.1f} ms ({c['best_s'] * 1000:,.1f} ms) |",
        "",
        f"The compaction that moved them: {r['compact_s'] * 1000:,.0f} ms ({r['moved']:,} delta rows); one with "
        f"nothing to move: {r['compact_empty_s'] * 1000:,.1f} ms. The report's totals are the same in both states (but "
        "the hours of the complaints open now, counted until the statement's now()).",
        "",
        f"Two writers of today's purchases for {wr['size']:,} customers each of one tier and partner, "
        f"{wr['batches']} transactions each of one INSERT of their {wr['size']:,} purchases, going on for "
        f"{HOLD_S * 1000:.0f} ms (a sleep standing for the re-tier and churn of an ingest batch) before they "
        f"commit: {wr['serial_s']:.2f} s one after the other, {wr['concurrent_s']:.2f} s at once "
        f"({wr['serial_s'] / wr['concurrent_s']:.1f} x). Under migration 0023 the second waited for the first on "
        "their summary row: at once took as long as one after the other.",
        "",
        "The plan's lines on the deltas (EXPLAIN ANALYZE), pending:",
        "",
        "```",
        *w["plan"],
        "```",
        "",
        "compacted:",
        "",
        "```",
        *c["plan"],
        "```",
        "",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = await migrated_database(args.database or f"tierwise_bench_{args.customers}")
    return await run(args.customers, args.deltas, args.rounds, args.days, writer_batches=args.writer_batches, url=url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database", default=None, help="default: tierwise_bench_<customers>")
    parser.add_argument("--deltas", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--writer-batches", type=int, default=5)
    result = asyncio.run(main(parser.parse_args()))
    text_md = markdown(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text_md, encoding="utf-8")
    print(text_md)
