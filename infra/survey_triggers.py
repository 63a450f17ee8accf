"""Surveys sent by triggers that no request carries: a purchase (a while after it, once delivered)
and the periodic relationship survey. A procrastinate periodic job finds who is due, set-based, and
invites them through the one invitation statement (infra/repos/surveys.invite): same throttle, same
channel choice as the invitations of resolved complaints and of the ``inviteToSurvey`` mutation.
"""

from __future__ import annotations

import logging
from collections import Counter

import procrastinate
from sqlalchemy import text

from infra.job_deps import JobDeps
from infra.repos import surveys as surveys_repo
from infra.repos.base import Executor
from infra.settings import Settings

log = logging.getLogger("tierwise.surveys")


async def send_due_invitations(conn: Executor, settings: Settings) -> dict[str, int]:
    """Invite everyone due now; returns how many were invited per trigger (and skipped)."""
    candidates = await surveys_repo.triggered_candidates(
        conn,
        delay_hours=settings.survey_purchase_delay_hours,
        throttle_days=settings.survey_throttle_days,
        periodic_days=settings.survey_periodic_days,
        batch=settings.survey_invite_batch,
    )
    outcomes = await surveys_repo.invite(
        conn, candidates, throttle_days=settings.survey_throttle_days, periodic_days=settings.survey_periodic_days
    )
    counts: Counter[str] = Counter()
    for candidate, outcome in zip(candidates, outcomes, strict=True):
        counts[candidate.trigger if outcome.skipped is None else "skipped"] += 1
    return dict(counts)


def register_jobs(app: procrastinate.App, deps: JobDeps) -> None:
    settings: Settings = deps.settings

    @app.periodic(cron=settings.survey_invite_cron, periodic_id="survey-invitations")
    @app.task(name="tierwise.survey_invitations", queue="tierwise", queueing_lock="survey_invitations")
    async def survey_invitations_job(timestamp: int) -> dict[str, int]:
        async with deps.engine.begin() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 0"))
            counts = await send_due_invitations(conn, settings)
        log.info("survey invitations: %s", counts)
        return counts
