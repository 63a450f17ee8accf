"""The report summaries with deltas waiting (migration 0027): the survey-score and fairness statements timed with
``--deltas`` survey responses' delta rows not compacted yet, then after the compaction that folds them in; and
two writers re-tiering customers of one tier, one after the other and at once.

    python -m bench.report_deltas [--customers 20000] [--database NAME] [--deltas 5000] [--rounds 7]
                                  [--writer-batches 5]

The deltas are made as writers make them: ``--deltas`` NPS responses of live customers (one INSERT of the
response and one of its answers each: each statement's triggers append one delta row per summary key they
touch), spread over the last 90 days. The statements (surveyScores NPS by tier and by month and tier, the whole
history, and the fairness report, staff scope) run ``--rounds`` times after one warm-up in each state and return
the same rows in both. Then two writers move customers of one tier to another, ``--writer-batches`` transactions
each of one UPDATE of BATCH customers then HOLD_S of other work before the commit (as an ingest batch goes on
to its churn after re-tiering): one after the other, then at once (moving them back).

The responses are deleted afterwards and compacted away, the customers are back in their tier: the data set is
left as it was. ``tierwise_report_deltas_<N>`` by default (made by bench/generate.py if missing), or
``--database``. Writes bench/results/report_deltas.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.common import machine, migrated_database
from bench.generate import generate
from infra import economics
from infra.db import create_engine
from infra.repos import reports
from infra.repos.base import ALL
from infra.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "report_deltas.md"
LIVE = "deleted_at IS NULL AND merged_into_id IS NULL"
DELTAS = (
    "report_score_day_deltas",
    "report_invitation_day_deltas",
    "report_complaint_tier_deltas",
    "report_tier_reach_deltas",
)
BATCH = 500
HOLD_S = 0.2  # what an ingest batch does after re-tiering, before it commits (churn): a sleep here

Statement = Callable[[AsyncConnection], Awaitable[Any]]
STATEMENTS: dict[str, Statement] = {
    "surveyScores NPS by tier": lambda c: reports.survey_scores(
        c, kind="nps", group_by=["TIER"], period="month", since=None, until=None, survey_id=None, scope=ALL
    ),
    "surveyScores NPS by month and tier": lambda c: reports.survey_scores(
        c, kind="nps", group_by=["PERIOD", "TIER"], period="month", since=None, until=None, survey_id=None, scope=ALL
    ),
    "fairness": lambda c: reports.fairness(c, since=None, until=None, scope=ALL),
}


async def _time(conn: AsyncConnection, statement: Statement, rounds: int) -> dict[str, Any]:
    """The statement's median and best time, and its rows."""
    rows = await statement(conn)  # warm-up
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        assert await statement(conn) == rows
        samples.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(samples), "best_s": min(samples), "rows": rows}


async def _pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        sql = "SELECT " + " + ".join(f"(SELECT count(*) FROM {d})" for d in DELTAS)
        return int((await conn.execute(text(sql))).scalar_one())


async def _compact(engine: AsyncEngine) -> float:
    t0 = time.perf_counter()
    assert await economics.compact(engine) is not None, "another compaction is running on this database"
    return time.perf_counter() - t0


async def two_writers(url: str, batches: int, size: int) -> dict[str, Any]:
    """Two writers moving ``size`` customers each of the largest tier to another one, ``batches`` transactions
    each that go on for HOLD_S before they commit: one after the other, then at once (moving them back)."""
    conns = [await asyncpg.connect(url.replace("+asyncpg", "")) for _ in range(2)]
    try:
        tier = await conns[0].fetchval(
            f"SELECT tier_code FROM customers WHERE {LIVE} AND tier_code IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC"
        )
        other = await conns[0].fetchval(
            "SELECT t.code FROM tiers t JOIN tier_policies p ON p.id = t.policy_id"
            " WHERE p.status = 'active' AND t.code <> $1 ORDER BY t.rank LIMIT 1",
            tier,
        )
        ids = await conns[0].fetchval(
            f"SELECT array_agg(id) FROM (SELECT id FROM customers WHERE {LIVE} AND tier_code = $1"
            " ORDER BY id LIMIT $2) c",
            tier,
            2 * batches * size,
        )
        half = len(ids) // 2
        parts = [[ids[w * half + b * size : w * half + (b + 1) * size] for b in range(batches)] for w in range(2)]

        async def write(conn: asyncpg.Connection, groups: list[list[uuid.UUID]], to: str) -> None:
            for group in groups:
                async with conn.transaction():
                    await conn.execute("UPDATE customers SET tier_code = $2 WHERE id = ANY($1::uuid[])", group, to)
                    await conn.execute("SELECT pg_sleep($1)", HOLD_S)

        t0 = time.perf_counter()
        for conn, groups in zip(conns, parts, strict=True):
            await write(conn, groups, other)
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        await asyncio.gather(*(write(conn, groups, tier) for conn, groups in zip(conns, parts, strict=True)))
        concurrent = time.perf_counter() - t0
    finally:
        for conn in conns:
            await conn.close()
    return {"batches": batches, "size": size, "tier": tier, "serial_s": serial, "concurrent_s": concurrent}


async def run(
    customers: int, deltas: int, rounds: int, *, writer_batches: int = 5, url: str | None = None
) -> dict[str, Any]:
    """The figures (``url``: a migrated database to fill or reuse instead of ``tierwise_report_deltas_<N>``)."""
    url = url or await migrated_database(f"tierwise_report_deltas_{customers}")
    await generate(url, customers, progress=False)
    engine = create_engine(url, Settings(_env_file=None))  # type: ignore[call-arg]
    out: dict[str, Any] = {"customers": customers, "rounds": rounds}
    made: list[uuid.UUID] = []
    try:
        await _compact(engine)  # start from none pending
        async with engine.connect() as conn:
            survey, question = (
                await conn.execute(
                    text("SELECT survey_id, id FROM survey_questions WHERE kind = 'nps' ORDER BY survey_id LIMIT 1")
                )
            ).one()
            free = (
                await conn.execute(
                    text(
                        f"""SELECT id, partner_id, tier_code FROM customers c WHERE {LIVE}
                            AND NOT EXISTS (SELECT 1 FROM survey_responses r WHERE r.customer_id = c.id
                                            AND r.survey_id = :s AND r.complaint_id IS NULL)
                            ORDER BY id LIMIT :n"""
                    ),
                    {"s": survey, "n": deltas},
                )
            ).all()
        rng = random.Random(25)
        now = dt.datetime.now(dt.UTC)
        rows = [
            {
                "id": uuid.uuid4(),
                "s": survey,
                "q": question,
                "c": c.id,
                "p": c.partner_id,
                "t": c.tier_code,
                "at": now - dt.timedelta(seconds=rng.randrange(90 * 86400)),
                "score": rng.randrange(11),
            }
            for c in free
        ]
        t0 = time.perf_counter()
        async with engine.begin() as conn:  # one INSERT per response and one per answer (executemany)
            await conn.execute(
                text(
                    "INSERT INTO survey_responses (id, survey_id, customer_id, partner_id, channel, tier_at_response,"
                    " submitted_at) VALUES (:id, :s, :c, :p, 'email', :t, :at)"
                ),
                rows,
            )
            made = [r["id"] for r in rows]
            await conn.execute(
                text("INSERT INTO survey_answers (response_id, question_id, score) VALUES (:id, :q, :score)"), rows
            )
        out["responses"] = len(rows)
        out["insert_s"] = time.perf_counter() - t0
        out["pending"] = await _pending(engine)
        async with engine.connect() as conn:
            out["summary_rows"] = (await conn.execute(text("SELECT count(*) FROM report_score_days"))).scalar_one()
            out["with_deltas"] = {name: await _time(conn, s, rounds) for name, s in STATEMENTS.items()}
        out["compact_s"] = await _compact(engine)
        out["compact_empty_s"] = await _compact(engine)
        async with engine.connect() as conn:
            out["compacted"] = {name: await _time(conn, s, rounds) for name, s in STATEMENTS.items()}
        for name in STATEMENTS:
            assert out["with_deltas"][name]["rows"] == out["compacted"][name]["rows"], f"compaction changed {name}"
        out["writers"] = await two_writers(url, writer_batches, BATCH)
    finally:
        if made:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM survey_responses WHERE id = ANY(:ids)"), {"ids": made})
        await _compact(engine)
        await engine.dispose()
    out["load"] = os.getloadavg()[0]
    return out


def markdown(r: dict[str, Any]) -> str:
    w, c, wr = r["with_deltas"], r["compacted"], r["writers"]
    lines = [
        f"# The report summaries with deltas waiting (bench/report_deltas.py, {r['customers']:,} customers)",
        "",
        f"Machine: {machine()}, load average {r['load']:.1f} at the end (other work on the machine counts).",
        "",
        f"{r['pending']:,} delta rows pending ({r['responses']:,} NPS responses inserted one statement each, and "
        f"their answers one statement each, spread over the last 90 days, in {r['insert_s']:.1f} s), "
        f"{r['summary_rows']:,} rows in report_score_days. Each statement over the whole history (staff scope), "
        f"median of {r['rounds']} after a warm-up (best):",
        "",
        "| statement | deltas pending | compacted |",
        "|---|---:|---:|",
        *(
            f"| {name} | {w[name]['median_s'] * 1000:,.1f} ms ({w[name]['best_s'] * 1000:,.1f}) "
            f"| {c[name]['median_s'] * 1000:,.1f} ms ({c[name]['best_s'] * 1000:,.1f}) |"
            for name in STATEMENTS
        ),
        "",
        f"The compaction that moved them (the economics job's body, economics deltas too): "
        f"{r['compact_s'] * 1000:,.0f} ms; one with nothing to move: {r['compact_empty_s'] * 1000:,.1f} ms. Each "
        "statement returns the same rows in both states.",
        "",
        f"Two writers re-tiering customers of {wr['tier']} ({wr['batches']} transactions each of one UPDATE of "
        f"{wr['size']:,} customers to another tier, going on for {HOLD_S * 1000:.0f} ms before they commit): "
        f"{wr['serial_s']:.2f} s one after the other, {wr['concurrent_s']:.2f} s at once "
        f"({wr['serial_s'] / wr['concurrent_s']:.1f} x).",
        "",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = await migrated_database(args.database or f"tierwise_report_deltas_{args.customers}")
    return await run(args.customers, args.deltas, args.rounds, writer_batches=args.writer_batches, url=url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database", default=None, help="default: tierwise_report_deltas_<customers>")
    parser.add_argument("--deltas", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--writer-batches", type=int, default=5)
    result = asyncio.run(main(parser.parse_args()))
    text_md = markdown(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text_md, encoding="utf-8")
    print(text_md)
