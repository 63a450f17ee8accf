"""What the benchmarks share: a seeded database and timing helpers."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

from demo.seed import is_empty, seed
from infra.db import create_engine
from infra.migrate import upgrade
from infra.settings import Settings

ADMIN_URL = os.environ.get("TIERWISE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def migrated_database(name: str) -> str:
    """The URL of database ``name``, created if missing and migrated by the project's own migrate function."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    return url


async def bench_database(name: str, customers: int) -> str:
    """A migrated database named ``name`` holding ``customers`` seeded customers (made once, reused)."""
    url = await migrated_database(name)
    engine = create_engine(url, Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        if await is_empty(engine):
            await seed(engine, customers, progress=True)
    finally:
        await engine.dispose()
    return url


@dataclass
class Timing:
    name: str
    samples: list[float]

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples) * 1000

    def pct_ms(self, p: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    @property
    def per_s(self) -> float:
        return len(self.samples) / sum(self.samples)


async def interleaved(
    runs: dict[str, Callable[[], Awaitable[object]]], rounds: int, per_round: int, warmup: int = 5
) -> dict[str, Timing]:
    """Time each callable in alternating rounds, so drift on the machine hits all of them alike."""
    for fn in runs.values():
        for _ in range(warmup):
            await fn()
    out = {name: Timing(name, []) for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            for _ in range(per_round):
                start = time.perf_counter()
                await fn()
                out[name].samples.append(time.perf_counter() - start)
    return out


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
