"""What the fact triggers' customer locks cost (migration 0028): a batch of 500 purchases for 500 distinct
customers with the fact triggers as 0024 made them and as 0028 makes them, on the benchmark data of
bench/generate.py.

    python -m bench.economics_locks [--customers 20000] [--database NAME] [--rounds 15] [--batch 500]

Each round runs, once per variant (their order alternating from round to round), one transaction that inserts
``--batch`` purchases of today for as many live customers drawn at random, then runs the after-change step an
ingest batch runs for them (metrics, re-tier, churn queued: infra/after_change.py), and rolls back. Timed: the
INSERT alone (its statement triggers included) and the INSERT with the after-change step. The variant's
functions are installed (``CREATE OR REPLACE``, committed) before its run; 0028's are left installed at the end.
Nothing else is written: the data set stays as it was (``tierwise_bench_<N>`` by default, made by
bench/generate.py if missing, or ``--database``). Writes bench/results/economics_locks.md.

Absolute figures depend on the machine and what else runs on it: the file says what it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import machine, migrated_database
from bench.generate import generate
from infra.after_change import after_change
from infra.db import create_engine
from infra.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "economics_locks.md"
LOCKS = importlib.import_module("infra.migrations.versions.0028_economics_customer_locks")
VARIANTS = {"0024 (no lock)": False, "0028 (customers locked)": True}
INSERT = text(
    """INSERT INTO purchases (customer_id, partner_id, amount, currency, purchased_at)
       SELECT c.id, c.partner_id, 10.00, 'EUR', now() FROM customers c WHERE c.id = ANY(CAST(:ids AS uuid[]))"""
)


async def _install(engine: AsyncEngine, locking: bool) -> None:
    async with engine.begin() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute(LOCKS.functions(locking=locking))


async def _batch(engine: AsyncEngine, ids: list[Any]) -> tuple[float, float]:
    """The INSERT's time and the INSERT with the after-change step's, rolled back."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # the transaction begun, its connection taken
        start = time.perf_counter()
        await conn.execute(INSERT, {"ids": ids})
        inserted = time.perf_counter()
        await after_change(conn, ids, actor="bench", churn_mode="defer")
        done = time.perf_counter()
        await conn.rollback()
    return inserted - start, done - start


async def run(url: str, customers: int, rounds: int, batch: int) -> dict[str, Any]:
    await generate(url, customers, progress=False)
    engine = create_engine(url, Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        async with engine.connect() as conn:
            live = (
                (
                    await conn.execute(
                        text("SELECT id FROM customers WHERE deleted_at IS NULL AND merged_into_id IS NULL")
                    )
                )
                .scalars()
                .all()
            )
        rng = random.Random(27)
        samples: dict[str, dict[str, list[float]]] = {v: {"insert": [], "batch": []} for v in VARIANTS}
        for locking in VARIANTS.values():  # warm-up
            await _install(engine, locking)
            await _batch(engine, rng.sample(live, batch))
        for n in range(rounds):
            order = list(VARIANTS) if n % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                await _install(engine, VARIANTS[variant])
                insert_s, batch_s = await _batch(engine, rng.sample(live, batch))
                samples[variant]["insert"].append(insert_s)
                samples[variant]["batch"].append(batch_s)
        await _install(engine, True)
    finally:
        await engine.dispose()
    return {
        "customers": customers,
        "live": len(live),
        "rounds": rounds,
        "batch": batch,
        "samples": samples,
        "machine": machine(),
        "load": os.getloadavg()[0],
    }


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms ({min(values) * 1000:.1f} ms)"


def markdown(r: dict[str, Any]) -> str:
    rows = "\n".join(f"| {variant} | {_ms(s['insert'])} | {_ms(s['batch'])} |" for variant, s in r["samples"].items())
    return f"""# What the fact triggers' customer locks cost (bench/economics_locks.py, {r["customers"]:,} customers)

Machine: {r["machine"]}, load average {r["load"]:.1f} at the end (other work on the machine counts).

One transaction per variant and round ({r["rounds"]} rounds, the variants' order alternating, after a warm-up):
an INSERT of {r["batch"]} purchases of today for {r["batch"]} distinct live customers drawn at random (of
{r["live"]:,}), then the after-change step of an ingest batch (metrics, re-tier, churn queued), rolled back.
Median (best):

| fact triggers | INSERT of {r["batch"]} purchases | INSERT + after-change step |
|---|---:|---:|
{rows}
"""


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = await migrated_database(args.database or f"tierwise_bench_{args.customers}")
    return await run(url, args.customers, args.rounds, args.batch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database", default=None, help="default: tierwise_bench_<customers>")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=500)
    result = asyncio.run(main(parser.parse_args()))
    text_md = markdown(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text_md, encoding="utf-8")
    print(text_md)
