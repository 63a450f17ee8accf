"""The economics report's compaction job (issue 15): the triggers of migration 0024 append every write's
deltas to economics_day_deltas and economics_reach_deltas (so that concurrent writers never wait for each
other on a summary row); this job moves them into the summaries, once per tick across instances
(``TIERWISE_ECONOMICS_COMPACT_CRON``, every minute by default). The report reads summaries and deltas alike,
so it is exact whether or not the job ran; deltas left waiting only make it slower
(bench/results/economics_deltas.md). The same job compacts the daily benefit spending of migration 0025
(what budget warnings sum), kept the same way."""

from __future__ import annotations

import logging

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.job_deps import JobDeps
from infra.repos import benefits as benefits_repo
from infra.repos import economics as repo

log = logging.getLogger("tierwise.economics")


async def compact(engine: AsyncEngine) -> int | None:
    """One compaction in a transaction of its own: the delta rows moved, None if another one was running.
    The daily benefit spending that budget warnings read (migration 0025) is compacted with them, in a
    transaction of its own (a run of one never waits for the other)."""
    async with engine.begin() as conn:
        # a backlog (the job stopped for a while) is moved in one go, however long that takes
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        moved = await repo.compact(conn)
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        spend = await benefits_repo.compact_spend(conn)
    if moved is None and spend is None:
        return None
    return (moved or 0) + (spend or 0)


def register_jobs(app: procrastinate.App, deps: JobDeps) -> None:
    """The compaction, once per tick across instances."""

    @app.periodic(cron=deps.settings.economics_compact_cron, periodic_id="economics-compact")
    @app.task(name="tierwise.economics_compact", queue="tierwise", queueing_lock="economics_compact")
    async def economics_compact_job(timestamp: int) -> dict[str, int | None]:
        moved = await compact(deps.engine)
        if moved is None:
            log.info("economics compaction skipped: another one is running")
        else:  # every minute: said at INFO only when there was something to move
            log.log(logging.INFO if moved else logging.DEBUG, "economics compaction: %d delta rows moved", moved)
        return {"moved": moved}
