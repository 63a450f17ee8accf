"""Scheduled work runs through procrastinate on PostgreSQL: a deferred job is taken by exactly one
of several workers, the nightly re-tier puts customers in the tier their metrics enter, and old finished
jobs are purged."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from infra.churn import REFRESH_TASK
from infra.jobs import QUEUE, JobDeps, all_queues, create_job_app, registrars
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


async def test_job_retention_purges_old_finished_jobs_of_every_queue_and_keeps_failed_ones(api: Api) -> None:
    """Finished jobs pile up (the economics compaction alone makes 1 440 a day): the retention job deletes the
    succeeded ones of every tierwise queue once ``job_retention_days`` old (procrastinate's event times), with
    their events, and keeps recent ones and failed ones."""
    jobs = api.services.jobs
    await jobs.configure_task(REFRESH_TASK).defer_async(customer_ids=[])  # nothing to score: succeeds
    await jobs.configure_task(REFRESH_TASK).defer_async(customer_ids=["not a customer id"])  # fails
    for n in range(3):  # one at a time (a queueing lock)
        await jobs.configure_task("tierwise.economics_compact").defer_async(timestamp=n)
        await jobs.run_worker_async(queues=all_queues(), wait=False, install_signal_handlers=False)
    engine = api.services.engine
    statuses = "SELECT task_name, status::text, count(*) FROM procrastinate_jobs GROUP BY 1, 2"
    async with engine.begin() as conn:
        before = {(r[0], r[1]): r[2] for r in (await conn.execute(text(statuses))).all()}
        assert before[("tierwise.economics_compact", "succeeded")] >= 3  # and those a worker defers at start
        assert before[(REFRESH_TASK, "succeeded")] == 1
        assert before[(REFRESH_TASK, "failed")] == 1
        aged = api.settings.job_retention_days + 1
        await conn.execute(  # all but one compaction finished long ago, and the failed refresh too
            text(
                "UPDATE procrastinate_events SET at = at - make_interval(days => :d) WHERE job_id IN"
                " (SELECT id FROM procrastinate_jobs WHERE task_name <> 'tierwise.economics_compact'"
                " OR id < (SELECT max(id) FROM procrastinate_jobs WHERE task_name = 'tierwise.economics_compact'))"
            ),
            {"d": aged},
        )
    [periodic] = [p for p in jobs.periodic_registry.periodic_tasks.values() if p.periodic_id == "job-retention"]
    assert (periodic.task.name, periodic.cron) == ("tierwise.job_retention", api.settings.job_retention_cron)
    await jobs.configure_task("tierwise.job_retention").defer_async(timestamp=0)
    await jobs.run_worker_async(queues=all_queues(), wait=False, install_signal_handlers=False)
    async with engine.connect() as conn:
        after = {(r[0], r[1]): r[2] for r in (await conn.execute(text(statuses))).all()}
        orphans = (
            "SELECT count(*) FROM procrastinate_events e"
            " WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.id = e.job_id)"
        )
        assert (await conn.execute(text(orphans))).scalar_one() == 0
    assert after[("tierwise.economics_compact", "succeeded")] == 1  # the recent one
    assert (REFRESH_TASK, "succeeded") not in after
    assert after[(REFRESH_TASK, "failed")] == 1  # old, but failed: someone should look at it
    assert after[("tierwise.job_retention", "succeeded")] == 1
