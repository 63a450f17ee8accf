"""Scheduled work runs through procrastinate on PostgreSQL: a deferred job is taken by exactly one
of several workers, and the nightly re-tier puts customers in the tier their metrics enter."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from infra.jobs import QUEUE, JobDeps, create_job_app, registrars
from tests.conftest import Api


async def test_retier_job_runs_once_across_two_workers(api: Api) -> None:
    token = await api.user("alice", "admin")
    for name in ("Ann Lee", "Bo Chen", "Cy Diaz"):
        await api.gql(token, f'mutation {{ createCustomer(input: {{name: "{name}"}}) {{ customer {{ id }} }} }}')
    engine = api.services.engine
    async with engine.begin() as conn:  # as if time-based rules had moved them: forget their tiers
        await conn.execute(text("UPDATE customers SET tier_code = NULL"))
        before = (await conn.execute(text("SELECT count(*) FROM tier_changes"))).scalar_one()

    await api.services.jobs.configure_task("tierwise.retier_all").defer_async(timestamp=0)
    second = create_job_app(api.url, JobDeps(engine=engine, settings=api.settings), registrars())
    async with second.open_async():
        workers = [
            app.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False)
            for app in (api.services.jobs, second)
        ]
        await asyncio.wait_for(asyncio.gather(*workers), timeout=30)

    async with engine.connect() as conn:
        jobs = (
            await conn.execute(  # workers also defer the periodic jobs due at start (the SLA sweep, …)
                text(
                    "SELECT status, count(*) FROM procrastinate_jobs WHERE task_name = 'tierwise.retier_all'"
                    " GROUP BY status"
                )
            )
        ).all()
        tiers = (await conn.execute(text("SELECT count(*) FROM customers WHERE tier_code = 'bronze'"))).scalar_one()
        after = (await conn.execute(text("SELECT count(*) FROM tier_changes"))).scalar_one()
    assert [(r.status, r.count) for r in jobs] == [("succeeded", 1)]
    assert tiers == 3
    assert after - before == 3  # one 'initial' history row each, written once
