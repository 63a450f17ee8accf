"""The summaries' compaction job (issue 15): the triggers of migration 0024 append every write's deltas to
economics_day_deltas and economics_reach_deltas (so that concurrent writers never wait for each other on a
summary row); this job moves them into the summaries, once per tick across instances
(``TIERWISE_ECONOMICS_COMPACT_CRON``, every minute by default). The report reads summaries and deltas alike,
so it is exact whether or not the job ran; deltas left waiting only make it slower
(bench/results/economics_deltas.md). The same job compacts the daily benefit spending of migration 0025
(what budget warnings sum) and the report summaries of migration 0010 (the survey scores and the fairness
report, through deltas since migration 0027), kept the same way."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra.job_deps import JobDeps
from infra.repos import benefits as benefits_repo
from infra.repos import economics as repo
from infra.repos import reports as reports_repo

log = logging.getLogger("tierwise.economics")


async def compact(engine: AsyncEngine) -> int | None:
    """One compaction of each kind of summary (the economics report's, the daily benefit spending, the report
    summaries), each in a transaction of its own (a run of one never waits for another): the delta rows moved,
    None if another compaction was running for every kind."""
    runs = (repo.compact, benefits_repo.compact_spend, reports_repo.compact_summaries)
    moved = [await _compact_one(engine, run) for run in runs]
    if all(m is None for m in moved):
        return None
    return sum(m or 0 for m in moved)


async def _compact_one(engine: AsyncEngine, run: Callable[[AsyncConnection], Awaitable[int | None]]) -> int | None:
    async with engine.begin() as conn:
        # a backlog (the job stopped for a while) is moved in one go, however long that takes
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        return await run(conn)


def register_jobs(app: procrastinate.App, deps: JobDeps) -> None:
    """The compaction, once per tick across instances."""

    @app.periodic(cron=deps.settings.economics_compact_cron, periodic_id="economics-compact")
    @app.task(name="tierwise.economics_compact", queue="tierwise", queueing_lock="economics_compact")
    async def economics_compact_job(timestamp: int) -> dict[str, int | None]:
        moved = await compact(deps.engine)
        if moved is None:
            log.info("summaries compaction skipped: another one is running")
        else:  # every minute: said at INFO only when there was something to move
            log.log(logging.INFO if moved else logging.DEBUG, "summaries compaction: %d delta rows moved", moved)
        return {"moved": moved}
