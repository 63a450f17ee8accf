"""Breach and escalation are decided in SQL only (infra/repos/clocks.py): edge cases evaluated in PostgreSQL on
constructed clocks (breach exactly at the deadline, a microsecond after, stopped and paused clocks,
sticky flags, escalation of critical complaints); and pause/resume through real transitions use
domain/sla.py (whole seconds truncated, the deadline moved by as much)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text

from domain import sla
from infra.repos.clocks import breached_sql, escalation_reason_sql, first_response_late_sql, resolution_late_sql
from tests.api.helpers import TRANSITION_COMPLAINT, create_customer, ok, open_complaint, raw_id
from tests.conftest import Api

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
US = dt.timedelta(microseconds=1)

_COLUMNS = {
    "opened_at": "timestamptz",
    "first_response_due_at": "timestamptz",
    "resolution_due_at": "timestamptz",
    "first_responded_at": "timestamptz",
    "resolved_at": "timestamptz",
    "paused_since": "timestamptz",
    "paused_seconds": "integer",
    "first_response_breached": "boolean",
    "resolution_breached": "boolean",
    "status": "text",
    "severity": "text",
    "escalated_at": "timestamptz",
}
NOW = "CAST(:now AS timestamptz)"
VERDICT = text(
    f"SELECT {first_response_late_sql('k', NOW)} AS fr, {resolution_late_sql('k', NOW)} AS res,"
    f" {breached_sql('k', NOW)} AS breached, {escalation_reason_sql('k', NOW, ':fraction')} AS reason"
    " FROM (SELECT " + ", ".join(f"CAST(:{c} AS {t}) AS {c}" for c, t in _COLUMNS.items()) + ") k"
)


async def verdict(engine: Any, now: dt.datetime, **kw: Any) -> Any:
    """The SQL verdicts for a complaint opened at T0 with 1 h to the first response and 8 h to resolution."""
    row: dict[str, Any] = {
        "opened_at": T0,
        "first_response_due_at": T0 + H,
        "resolution_due_at": T0 + 8 * H,
        "first_responded_at": None,
        "resolved_at": None,
        "paused_since": None,
        "paused_seconds": 0,
        "first_response_breached": False,
        "resolution_breached": False,
        "status": "open",
        "severity": "medium",
        "escalated_at": None,
        **kw,
    }
    async with engine.connect() as conn:
        return (await conn.execute(VERDICT, {**row, "now": now, "fraction": 0.5})).one()


async def test_a_breach_is_strictly_after_the_deadline(engine: Any) -> None:
    assert not (await verdict(engine, T0 + H)).fr  # exactly at the deadline: in time
    assert (await verdict(engine, T0 + H + US)).fr
    answered = {"first_responded_at": T0 + M}
    assert not (await verdict(engine, T0 + 8 * H, **answered)).res
    assert (await verdict(engine, T0 + 8 * H + US, **answered)).res
    # a clock stopped exactly at its deadline stays in time forever
    stopped = await verdict(engine, T0 + 100 * H, first_responded_at=T0 + H, resolved_at=T0 + 8 * H)
    assert (stopped.fr, stopped.res, stopped.breached) == (False, False, False)


async def test_stopped_clocks_keep_their_verdict_and_flags_are_sticky(engine: Any) -> None:
    late = await verdict(engine, T0 + 100 * H, first_responded_at=T0 + 2 * H)
    assert late.fr
    in_time = await verdict(engine, T0 + 100 * H, first_responded_at=T0 + 30 * M, resolved_at=T0 + 7 * H)
    assert not in_time.breached
    flagged = await verdict(
        engine, T0 + 3 * H, first_responded_at=T0 + M, resolved_at=T0 + 2 * H, resolution_breached=True
    )
    assert (flagged.res, flagged.breached) == (False, True)  # the clock says in time; the flag stays
    no_targets = await verdict(engine, T0 + 1000 * H, first_response_due_at=None, resolution_due_at=None)
    assert not no_targets.breached


async def test_a_paused_clock_is_judged_where_it_stopped(engine: Any) -> None:
    waiting = {"first_responded_at": T0 + M, "paused_since": T0 + 2 * H, "status": "pending_customer"}
    assert not (await verdict(engine, T0 + 300 * H, **waiting)).res  # no breach while waiting, however long
    late_then_paused = {**waiting, "paused_since": T0 + 9 * H}
    assert (await verdict(engine, T0 + 9 * H, **late_then_paused)).res  # a breach before the pause stays one
    at_deadline = {**waiting, "paused_since": T0 + 8 * H}
    assert not (await verdict(engine, T0 + 50 * H, **at_deadline)).res  # paused exactly at the deadline


async def test_escalation_reasons(engine: Any) -> None:
    async def reason(now: dt.datetime, **kw: Any) -> str | None:
        return (await verdict(engine, now, **kw)).reason  # type: ignore[no-any-return]

    assert await reason(T0 + 2 * H, severity="low", status="new") == sla.FIRST_RESPONSE_BREACHED
    answered = {"first_responded_at": T0 + M}
    assert await reason(T0 + 9 * H, **answered) == sla.RESOLUTION_BREACHED
    assert await reason(T0 + 7 * H, **answered) is None
    # critical complaints escalate once half their time is used, before any breach
    assert await reason(T0 + 29 * M, severity="critical", status="new") is None
    assert await reason(T0 + 30 * M, severity="critical", status="new") == sla.CRITICAL_FIRST_RESPONSE_AT_RISK
    assert await reason(T0 + 3 * H, severity="critical", **answered) is None
    assert await reason(T0 + 4 * H, severity="critical", **answered) == sla.CRITICAL_RESOLUTION_AT_RISK
    # 2 h of waiting on the customer do not count as used time
    waited = {**answered, "paused_seconds": 7200, "resolution_due_at": T0 + 10 * H}
    assert await reason(T0 + 5 * H, severity="critical", **waited) is None
    assert await reason(T0 + 6 * H, severity="critical", **waited) == sla.CRITICAL_RESOLUTION_AT_RISK
    for status in ("resolved", "closed"):
        assert await reason(T0 + 50 * H, status=status) is None
    assert await reason(T0 + 50 * H, escalated_at=T0 + 3 * H) is None


# ---------------------------------------------------------------- pause and resume through the API

CLOCK = """query($id: ID!) { complaint(id: $id) {
  version resolutionDueAt resolutionTimeLeft pausedSeconds slaPaused resolutionBreached breached } }"""


async def _move(api: Api, token: str, gid: str, to: str) -> dict[str, Any]:
    current = (await api.gql(token, CLOCK, {"id": gid}))["data"]["complaint"]
    body = await api.gql(
        token,
        TRANSITION_COMPLAINT,
        {"input": {"id": gid, "expectedVersion": current["version"], "to": to, "assignee": "agent"}},
    )
    ok(body, "transitionComplaint")
    return (await api.gql(token, CLOCK, {"id": gid}))["data"]["complaint"]  # type: ignore[no-any-return]


async def _sql(api: Api, statement: str, **params: Any) -> Any:
    async with api.services.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return result.first() if result.returns_rows else None


async def test_pause_and_resume_through_transitions_count_whole_seconds(api: Api) -> None:
    admin = await api.user("sla-clocks", "admin")
    customer = await create_customer(api, admin, name="Clock Customer")
    c = await open_complaint(api, admin, customer["id"], severity="HIGH")
    gid, cid = c["id"], raw_id(c["id"])
    await _move(api, admin, gid, "OPEN")
    due0 = (await _sql(api, "SELECT resolution_due_at FROM complaints WHERE id = :id", id=cid))[0]

    paused = await _move(api, admin, gid, "PENDING_CUSTOMER")
    assert paused["slaPaused"] is True
    # the customer took 2.7 s to answer (the pause is moved back; the resume runs at the real now())
    await _sql(api, "UPDATE complaints SET paused_since = paused_since - interval '2.7 seconds' WHERE id = :id", id=cid)
    resumed = await _move(api, admin, gid, "OPEN")
    row = await _sql(
        api, "SELECT paused_seconds, resolution_due_at, paused_since FROM complaints WHERE id = :id", id=cid
    )
    assert row.paused_since is None
    assert row.paused_seconds in (2, 3)  # 2.7 s plus the request's own time, truncated
    assert row.resolution_due_at - due0 == dt.timedelta(seconds=row.paused_seconds)  # moved by exactly as much
    assert (resumed["slaPaused"], resumed["pausedSeconds"]) == (False, row.paused_seconds)

    # a sub-second pause counts nothing and moves nothing
    await _move(api, admin, gid, "PENDING_CUSTOMER")
    await _move(api, admin, gid, "OPEN")
    again = await _sql(api, "SELECT paused_seconds, resolution_due_at FROM complaints WHERE id = :id", id=cid)
    assert (again.paused_seconds, again.resolution_due_at) == (row.paused_seconds, row.resolution_due_at)


async def test_a_pause_across_the_deadline_is_no_breach_and_the_api_agrees_with_the_sweep(api: Api) -> None:
    admin = await api.user("sla-across", "admin")
    customer = await create_customer(api, admin, name="Across Customer")
    c = await open_complaint(api, admin, customer["id"], severity="HIGH")
    gid, cid = c["id"], raw_id(c["id"])
    await _move(api, admin, gid, "OPEN")
    await _move(api, admin, gid, "PENDING_CUSTOMER")
    # as if the complaint was paused 1 h before its deadline, and the deadline passed 3 h ago while waiting
    await _sql(
        api,
        "UPDATE complaints SET resolution_due_at = now() - interval '3 hours',"
        " paused_since = now() - interval '4 hours' WHERE id = :id",
        id=cid,
    )
    waiting = (await api.gql(admin, CLOCK, {"id": gid}))["data"]["complaint"]
    assert (waiting["resolutionBreached"], waiting["breached"]) == (False, False)
    assert 3590 <= waiting["resolutionTimeLeft"] <= 3600  # frozen at the hour that was left
    resumed = await _move(api, admin, gid, "OPEN")
    assert (resumed["resolutionBreached"], resumed["breached"]) == (False, False)
    assert 3500 <= resumed["resolutionTimeLeft"] <= 3600  # the deadline moved by the 4 h waited
    flags = await _sql(api, "SELECT resolution_breached, paused_seconds FROM complaints WHERE id = :id", id=cid)
    assert flags.resolution_breached is False
    assert 4 * 3600 <= flags.paused_seconds <= 4 * 3600 + 60

    # once the moved deadline passes, the API says breached exactly as the filter does
    await _sql(api, "UPDATE complaints SET resolution_due_at = now() - interval '1 second' WHERE id = :id", id=cid)
    late = (await api.gql(admin, CLOCK, {"id": gid}))["data"]["complaint"]
    assert (late["resolutionBreached"], late["breached"]) == (True, True)
    assert late["resolutionTimeLeft"] < 0
    found = await api.gql(
        admin,
        "query($c: ID!) { complaints(filter: {customerId: $c, breached: true}) { edges { node { id } } } }",
        {"c": customer["id"]},
    )
    assert [e["node"]["id"] for e in found["data"]["complaints"]["edges"]] == [gid]
