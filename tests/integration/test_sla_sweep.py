"""The SLA sweep (infra/sla.py over infra/repos/clocks.py, the one definition of breach and escalation: its edge cases are in
test_sla_clocks.py) runs as a procrastinate job once across instances: breaches flagged (one event each), breached and at-risk critical complaints escalated,
resolved complaints closed after N days; a second run changes nothing. The churn and survey jobs run
the same way."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select, text

from infra.jobs import QUEUE, JobDeps, create_job_app, registrars
from infra.tables import complaint_events, complaints
from tests.api.helpers import TRANSITION_COMPLAINT, create_customer, ok, open_complaint, raw_id
from tests.conftest import Api

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


async def _age(api: Api, complaint_gid: str, delta: dt.timedelta) -> None:
    """As if ``delta`` had passed since everything that happened to the complaint."""
    cid = raw_id(complaint_gid)
    columns = (
        "opened_at",
        "first_response_due_at",
        "resolution_due_at",
        "first_responded_at",
        "resolved_at",
        "paused_since",
    )
    shift = ", ".join(f"{c} = {c} - CAST(:d AS interval)" for c in columns)
    async with api.services.engine.begin() as conn:
        await conn.execute(text(f"UPDATE complaints SET {shift} WHERE id = :id"), {"d": delta, "id": cid})
        await conn.execute(
            text("UPDATE complaint_events SET at = at - CAST(:d AS interval) WHERE complaint_id = :id"),
            {"d": delta, "id": cid},
        )


async def _run_two_workers(api: Api, *tasks: str) -> None:
    for task in tasks:
        await api.services.jobs.configure_task(task).defer_async(timestamp=0)
    second = create_job_app(api.url, JobDeps(engine=api.services.engine, settings=api.settings), registrars())
    async with second.open_async():
        workers = [
            app.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False)
            for app in (api.services.jobs, second)
        ]
        await asyncio.wait_for(asyncio.gather(*workers), timeout=30)


async def _events(api: Api) -> list[tuple[str, str, str | None, str]]:
    """The sweep's events, notes decrypted by the column type (they are encrypted at rest)."""
    e, k = complaint_events, complaints
    async with api.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(k.c.subject, e.c.kind, e.c.note, e.c.to_status)
                .join(k, k.c.id == e.c.complaint_id)
                .where(e.c.actor == "job:sla")
                .order_by(k.c.subject, e.c.id)
            )
        ).all()
        stored = (
            (await conn.execute(text("SELECT note FROM complaint_events WHERE actor = 'job:sla' ORDER BY id")))
            .scalars()
            .all()
        )
        assert stored
        assert all(note.startswith("tw2:") for note in stored)  # never plaintext (nor a placeholder) in the table
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_the_sla_sweep_job_flags_escalates_and_closes_once_across_two_workers(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Swept Customer"))["id"]
    late = await open_complaint(api, admin, customer, subject="a late", severity="LOW")
    critical = await open_complaint(api, admin, customer, subject="b critical", severity="CRITICAL")
    waiting = await open_complaint(api, admin, customer, subject="c waiting", severity="HIGH")
    done = await open_complaint(api, admin, customer, subject="d done", severity="LOW")
    await open_complaint(api, admin, customer, subject="e fresh", severity="LOW")
    steps = {
        waiting["id"]: [{"to": "OPEN", "assignee": "bob"}, {"to": "PENDING_CUSTOMER"}],
        done["id"]: [{"to": "RESOLVED", "assignee": "bob", "resolutionCode": "refund", "rootCauseCode": "process"}],
    }
    for cid, moves in steps.items():
        for version, move in enumerate(moves, start=1):
            ok(
                await api.gql(admin, TRANSITION_COMPLAINT, {"input": {"id": cid, "expectedVersion": version, **move}}),
                "transitionComplaint",
            )
    # bronze, low: 24 h to answer; bronze, critical: 1 h to answer; bronze, high: 4 h / 24 h
    await _age(api, late["id"], dt.timedelta(hours=25))
    await _age(api, critical["id"], dt.timedelta(minutes=40))  # 2/3 of its first-response time, not late
    await _age(api, waiting["id"], dt.timedelta(days=3))  # waiting on the customer: no breach
    await _age(api, done["id"], dt.timedelta(days=8))  # resolved 8 days ago: closes (7 days)

    await _run_two_workers(api, "tierwise.sla_sweep")

    async with api.services.engine.connect() as conn:
        jobs = (
            await conn.execute(text("SELECT id, status FROM procrastinate_jobs WHERE task_name = 'tierwise.sla_sweep'"))
        ).all()
        state = {
            r.subject: r
            for r in (
                await conn.execute(
                    text(
                        "SELECT subject, status, first_response_breached, resolution_breached, escalated_at IS NOT NULL"
                        " AS escalated, version FROM complaints"
                    )
                )
            ).all()
        }
    assert jobs
    assert {j.status for j in jobs} == {"succeeded"}  # each deferred sweep ran once (the periodic one may be there)
    assert (state["a late"].first_response_breached, state["a late"].escalated) == (True, True)
    assert (state["b critical"].first_response_breached, state["b critical"].escalated) == (False, True)
    assert (state["c waiting"].resolution_breached, state["c waiting"].escalated) == (False, False)
    assert (state["d done"].status, state["d done"].version) == ("closed", 3)
    assert (state["e fresh"].first_response_breached, state["e fresh"].escalated) == (False, False)
    expected = [
        ("a late", "sla_breach", "first-response SLA breached", "new"),
        ("a late", "escalation", "escalated: first-response SLA breached", "new"),
        ("b critical", "escalation", "escalated: critical complaint, first-response deadline at risk", "new"),
        ("d done", "transition", "closed automatically after 7 days without a reopen", "closed"),
    ]
    assert await _events(api) == expected

    await _run_two_workers(api, "tierwise.sla_sweep")  # nothing new: flags, escalations and closing happen once
    assert await _events(api) == expected

    got = await api.gql(
        admin,
        """query($id: ID!) { complaint(id: $id) { breached firstResponseBreached firstResponseTimeLeft escalatedAt
             events { kind toStatus note } } }""",
        {"id": late["id"]},
    )
    c = got["data"]["complaint"]
    assert (c["breached"], c["firstResponseBreached"]) == (True, True)
    assert -3700 < c["firstResponseTimeLeft"] <= -3600
    assert c["escalatedAt"] is not None
    assert [(e["kind"], e["toStatus"]) for e in c["events"]] == [
        ("TRANSITION", "NEW"),
        ("SLA_BREACH", "NEW"),
        ("ESCALATION", "NEW"),
    ]


async def test_the_nightly_churn_job_scores_every_customer(api: Api) -> None:
    admin = await api.user("alice", "admin")
    for name in ("Ann Lee", "Bo Chen"):
        await create_customer(api, admin, name=name)
    async with api.services.engine.begin() as conn:
        await conn.execute(text("DELETE FROM churn_scores"))
    await _run_two_workers(api, "tierwise.churn_all")
    async with api.services.engine.connect() as conn:
        scored = (await conn.execute(text("SELECT count(*), min(level), max(model_version) FROM churn_scores"))).one()
        jobs = (
            (await conn.execute(text("SELECT status FROM procrastinate_jobs WHERE task_name = 'tierwise.churn_all'")))
            .scalars()
            .all()
        )
    assert tuple(scored) == (2, "green", 1)
    assert jobs == ["succeeded"]
