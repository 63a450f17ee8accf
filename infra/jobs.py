"""Scheduled and background work on procrastinate (a PostgreSQL-based job queue).

With several instances, each periodic job is deferred once per tick (procrastinate records the
(periodic id, timestamp) pair under a unique constraint) and each job is taken by exactly one
worker (``SELECT … FOR UPDATE SKIP LOCKED``). Tasks are registered by ``register_*`` functions of
the feature modules, closing over the engine: nothing is built at import time.
"""

from __future__ import annotations

import logging

import procrastinate
from sqlalchemy.engine import make_url

from infra.job_deps import JobDeps as JobDeps
from infra.job_deps import Registrar as Registrar
from infra.settings import Settings

log = logging.getLogger("tierwise.jobs")

QUEUE = "tierwise"


def conninfo(database_url: str) -> str:
    """A libpq connection string for psycopg from any of our PostgreSQL URLs."""
    url = make_url(database_url.replace("+asyncpg", "").replace("+psycopg", ""))
    parts = {
        "host": url.host or url.query.get("host"),
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v not in (None, ""))


def create_job_app(database_url: str, deps: JobDeps, registrars: list[Registrar]) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database_url)))
    for register in registrars:
        register(app, deps)
    return app


def registrars() -> list[Registrar]:
    """Every feature's job registration (imported here, at call time, to keep infra importable alone)."""
    from infra import churn, economics, sla, survey_triggers, tiering, webhooks

    return [
        tiering.register_jobs,
        sla.register_jobs,
        survey_triggers.register_jobs,
        churn.register_jobs,
        webhooks.register_jobs,
        economics.register_jobs,
        register_job_retention,
    ]


def register_job_retention(app: procrastinate.App, deps: JobDeps) -> None:
    """Finished jobs purged once ``job_retention_days`` old, once per tick across instances: every job leaves
    a row and its events behind, and the periodic ones alone (the economics compaction every minute, the SLA
    sweep, the churn refreshes an ingest queues) make thousands a day. Failed jobs are kept (someone should
    look at them; the webhook queue's go with the event retention, infra/webhooks.py)."""
    settings = deps.settings

    @app.periodic(cron=settings.job_retention_cron, periodic_id="job-retention")
    @app.task(name="tierwise.job_retention", queue=QUEUE, queueing_lock="job_retention")
    async def job_retention_job(timestamp: int) -> dict[str, int]:
        days = settings.job_retention_days
        for queue in all_queues():
            await app.job_manager.delete_old_jobs(
                nb_hours=days * 24, queue=queue, include_cancelled=True, include_aborted=True
            )
        log.info("job retention: finished jobs older than %d days purged", days)
        return {"days": days}


def all_queues() -> list[str]:
    """Every queue of tierwise's jobs."""
    from infra.churn import REFRESH_QUEUE
    from infra.repos.events import WEBHOOK_QUEUE

    return [QUEUE, REFRESH_QUEUE, WEBHOOK_QUEUE]


async def run_worker(
    app: procrastinate.App, settings: Settings, *, queues: list[str] | None = None, once: bool = False
) -> None:
    """Work the tierwise queues (or these ``queues``) until cancelled (running jobs finish first); ``once``:
    until no job is due, then return."""
    await app.run_worker_async(
        queues=queues or all_queues(),
        concurrency=settings.worker_concurrency,
        install_signal_handlers=False,
        wait=not once,
    )
