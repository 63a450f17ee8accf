"""Complaints over HTTP (issue 5): follow-ups of closed complaints, refused transitions that change
nothing, the SLA clock shown on every complaint (time left, pause, breach), the post-resolution survey
invitation, SLA policies and the taxonomy managed by admins, and who sees what of it.

Time passes by moving a complaint's timestamps back with SQL; everything else goes through the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.api.helpers import (
    CREATE_SURVEY,
    OPEN_COMPLAINT,
    TRANSITION_COMPLAINT,
    USER_ERRORS,
    create_customer,
    error_codes,
    module_api,
    ok,
    open_complaint,
    payload,
    raw_id,
    record_purchases,
)
from tests.conftest import Api, running_api

RESOLVE = {"to": "RESOLVED", "assignee": "bob", "resolutionCode": "refund", "rootCauseCode": "process"}
SLA = """
query($id: ID!) { complaint(id: $id) {
  status version slaPolicyVersion tierAtOpen openedAt firstResponseDueAt resolutionDueAt
  firstResponseTimeLeft resolutionTimeLeft firstResponseBreached resolutionBreached breached slaPaused pausedSeconds
  escalatedAt followUpOf { id } events { fromStatus toStatus kind actor note } } }"""


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


@pytest.fixture(scope="module")
async def admin(api: Api) -> str:
    return await api.user("alice", "admin")


async def move(api: Api, token: str, complaint_id: str, version: int, **step: Any) -> dict[str, Any]:
    body = await api.gql(
        token, TRANSITION_COMPLAINT, {"input": {"id": complaint_id, "expectedVersion": version, **step}}
    )
    return payload(body, "transitionComplaint")


async def sla_of(api: Api, token: str, complaint_id: str) -> dict[str, Any]:
    body = await api.gql(token, SLA, {"id": complaint_id})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["complaint"]
    return result


async def age(api: Api, complaint_id: str, delta: dt.timedelta) -> None:
    """As if ``delta`` had passed since everything that happened to the complaint."""
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
        await conn.execute(
            text(f"UPDATE complaints SET {shift} WHERE id = :id"), {"d": delta, "id": raw_id(complaint_id)}
        )


async def listed(api: Api, token: str, customer: str, breached: bool) -> list[str]:
    query = """query($b: Boolean!, $c: ID!) {
      complaints(first: 50, filter: {breached: $b, customerId: $c}) { edges { node { id } } } }"""
    body = await api.gql(token, query, {"b": breached, "c": customer})
    assert "errors" not in body, body
    return [e["node"]["id"] for e in body["data"]["complaints"]["edges"]]


async def rows(api: Api, sql: str, **params: Any) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


# ---------------------------------------------------------------- lifecycle


async def test_a_new_contact_on_a_closed_complaint_opens_a_linked_follow_up(api: Api, admin: str) -> None:
    customer = (await create_customer(api, admin, name="Fola Follow"))["id"]
    first = await open_complaint(api, admin, customer, subject="Broken kettle")
    before = len(await rows(api, "SELECT 1 FROM complaints WHERE customer_id = :c", c=raw_id(customer)))

    # Not closed yet: no follow-up (a resolved one is reopened instead), and nothing is written.
    for version, step in ((1, None), (2, RESOLVE)):
        if step:
            assert (await move(api, admin, first["id"], 1, **step))["userErrors"] == []
        body = await api.gql(
            admin,
            OPEN_COMPLAINT,
            {
                "input": {
                    "customerId": customer,
                    "subject": "Again",
                    "description": "Still broken",
                    "category": "product_quality",
                    "followUpOf": first["id"],
                }
            },
        )
        errors = payload(body, "openComplaint")["userErrors"]
        assert [(e["field"], e["code"]) for e in errors] == [("followUpOf", "INVALID")], version
        assert ("reopen it" in errors[0]["message"]) is (step is not None)
    assert len(await rows(api, "SELECT 1 FROM complaints WHERE customer_id = :c", c=raw_id(customer))) == before

    assert (await move(api, admin, first["id"], 2, to="CLOSED"))["userErrors"] == []
    refused = await move(api, admin, first["id"], 3, to="OPEN")
    assert [e["code"] for e in refused["userErrors"]] == ["ILLEGAL_TRANSITION"]
    assert "closed is final" in refused["userErrors"][0]["message"]
    assert "follow-up" in refused["userErrors"][0]["message"]

    follow_up = await open_complaint(
        api, admin, customer, subject="Broken again", category="product_quality", followUpOf=first["id"]
    )
    got = await sla_of(api, admin, follow_up["id"])
    assert got["followUpOf"] == {"id": first["id"]}
    assert got["status"] == "NEW"
    assert (await sla_of(api, admin, first["id"]))["status"] == "CLOSED"  # closed stays final

    # Another customer's complaint cannot be followed up.
    other = (await create_customer(api, admin, name="Someone Else"))["id"]
    body = await api.gql(
        admin,
        OPEN_COMPLAINT,
        {
            "input": {
                "customerId": other,
                "subject": "x",
                "description": "y",
                "category": "other",
                "followUpOf": first["id"],
            }
        },
    )
    assert [e["code"] for e in payload(body, "openComplaint")["userErrors"]] == ["NOT_FOUND"]


async def test_every_transition_is_an_event_and_a_refused_one_changes_nothing(api: Api, admin: str) -> None:
    customer = (await create_customer(api, admin, name="Eve Events"))["id"]
    c = await open_complaint(api, admin, customer)
    cid = raw_id(c["id"])
    snapshot_sql = (
        "SELECT (SELECT md5(k::text) FROM complaints k WHERE id = :id),"
        " (SELECT count(*) FROM complaint_events WHERE complaint_id = :id)"
    )
    before = await rows(api, snapshot_sql, id=cid)
    for version, step in [
        (1, {"to": "ON_HOLD"}),
        (1, {"to": "CLOSED"}),
        (1, {"to": "NEW"}),
        (1, {"to": "RESOLVED"}),
        (7, {"to": "OPEN"}),
    ]:
        result = await move(api, admin, c["id"], version, **step)
        assert result["complaint"] is None
        assert result["userErrors"], step
    assert await rows(api, snapshot_sql, id=cid) == before

    path = [
        {"to": "OPEN", "assignee": "bob"},
        {"to": "PENDING_CUSTOMER"},
        {"to": "OPEN"},
        {"to": "ON_HOLD"},
        RESOLVE,
        {"to": "OPEN", "note": "not fixed"},
        RESOLVE,
        {"to": "CLOSED"},
    ]
    for version, step in enumerate(path, start=1):
        assert (await move(api, admin, c["id"], version, **step))["userErrors"] == [], step
    got = await sla_of(api, admin, c["id"])
    transitions = [(e["fromStatus"], e["toStatus"]) for e in got["events"] if e["kind"] == "TRANSITION"]
    assert len(transitions) == len(path) + 1
    assert transitions[-1] == ("RESOLVED", "CLOSED")
    assert all(e["actor"] == "user:alice" for e in got["events"])


# ---------------------------------------------------------------- the SLA clock


async def test_the_sla_clock_counts_down_pauses_for_the_customer_and_breaches(api: Api, admin: str) -> None:
    customer = (await create_customer(api, admin, name="Clara Clock"))["id"]
    c = await open_complaint(api, admin, customer, severity="HIGH")  # bronze x high: 240 min / 1440 min
    got = await sla_of(api, admin, c["id"])
    assert (got["slaPolicyVersion"], got["tierAtOpen"]) == (1, "bronze")
    assert 4 * 3600 - 30 < got["firstResponseTimeLeft"] <= 4 * 3600
    assert 24 * 3600 - 30 < got["resolutionTimeLeft"] <= 24 * 3600
    assert (got["breached"], got["slaPaused"], got["pausedSeconds"], got["escalatedAt"]) == (False, False, 0, None)

    assert await listed(api, admin, customer, False) == [c["id"]]
    await age(api, c["id"], dt.timedelta(hours=5))  # nobody answered for 5 hours: an hour late
    got = await sla_of(api, admin, c["id"])
    assert -3600 - 30 < got["firstResponseTimeLeft"] <= -3600
    assert (got["firstResponseBreached"], got["breached"], got["resolutionBreached"]) == (True, True, False)
    flagged = await rows(api, "SELECT first_response_breached FROM complaints WHERE id = :id", id=raw_id(c["id"]))
    assert flagged == [(False,)]  # not stored yet: the sweep or the clock stopping stores it
    for breached, expected in ((True, [c["id"]]), (False, [])):  # the list filter sees the clock too
        assert await listed(api, admin, customer, breached) == expected

    assert (await move(api, admin, c["id"], 1, to="OPEN", assignee="bob"))["userErrors"] == []
    got = await sla_of(api, admin, c["id"])
    assert got["firstResponseTimeLeft"] is None  # the clock stopped, late
    assert got["firstResponseBreached"] is True
    assert [(e["kind"], e["note"], e["actor"]) for e in got["events"] if e["kind"] == "SLA_BREACH"] == [
        ("SLA_BREACH", "first-response SLA breached", "user:alice")
    ]
    assert await rows(api, "SELECT first_response_breached FROM complaints WHERE id = :id", id=raw_id(c["id"])) == [
        (True,)
    ]

    # Waiting on the customer for 30 hours: the resolution clock stands still (19 h were left).
    assert (await move(api, admin, c["id"], 2, to="PENDING_CUSTOMER"))["userErrors"] == []
    await age(api, c["id"], dt.timedelta(hours=30))
    got = await sla_of(api, admin, c["id"])
    assert got["slaPaused"] is True
    assert 19 * 3600 - 30 < got["resolutionTimeLeft"] <= 19 * 3600
    assert got["resolutionBreached"] is False  # the wall-clock deadline passed 11 hours ago
    assert 30 * 3600 <= got["pausedSeconds"] < 30 * 3600 + 30
    due = dt.datetime.fromisoformat(got["resolutionDueAt"])
    assert abs((due - dt.datetime.now(dt.UTC)).total_seconds() - 19 * 3600) < 30  # the deadline moves with the pause

    assert (await move(api, admin, c["id"], 3, to="OPEN"))["userErrors"] == []
    got = await sla_of(api, admin, c["id"])
    assert got["slaPaused"] is False
    assert 19 * 3600 - 30 < got["resolutionTimeLeft"] <= 19 * 3600
    [(paused,)] = await rows(api, "SELECT paused_seconds FROM complaints WHERE id = :id", id=raw_id(c["id"]))
    assert 30 * 3600 <= paused < 30 * 3600 + 30

    # Resolved in time: no resolution breach, the clock is stopped.
    assert (await move(api, admin, c["id"], 4, **RESOLVE))["userErrors"] == []
    got = await sla_of(api, admin, c["id"])
    assert (got["resolutionTimeLeft"], got["resolutionBreached"], got["breached"]) == (None, False, True)


async def test_resolving_late_flags_the_resolution_breach_at_once(api: Api, admin: str) -> None:
    customer = (await create_customer(api, admin, name="Larry Late"))["id"]
    c = await open_complaint(api, admin, customer, severity="CRITICAL")  # bronze x critical: 60 / 480 min
    assert (await move(api, admin, c["id"], 1, to="OPEN", assignee="bob"))["userErrors"] == []
    await age(api, c["id"], dt.timedelta(hours=9))
    assert (await move(api, admin, c["id"], 2, **RESOLVE))["userErrors"] == []
    got = await sla_of(api, admin, c["id"])
    assert (got["firstResponseBreached"], got["resolutionBreached"]) == (False, True)
    assert [e["note"] for e in got["events"] if e["kind"] == "SLA_BREACH"] == ["resolution SLA breached"]


# ---------------------------------------------------------------- post-resolution survey


async def test_resolving_invites_to_the_post_resolution_survey_once_within_the_throttle(api: Api, admin: str) -> None:
    survey = ok(
        await api.gql(
            admin,
            CREATE_SURVEY,
            {
                "input": {
                    "title": "How did we handle it?",
                    "channels": ["EMAIL", "WEB"],
                    "perComplaint": True,
                    "trigger": "COMPLAINT_RESOLVED",
                    "questions": [{"kind": "CSAT", "dimension": "resolution", "prompt": "Happy?"}],
                }
            },
        ),
        "createSurvey",
    )["survey"]
    consenting = (await create_customer(api, admin, name="Connie Sent", email="connie@example.com"))["id"]
    silent = (await create_customer(api, admin, name="Sam Silent", email="sam@example.com"))["id"]
    async with api.services.engine.begin() as conn:
        await conn.execute(
            text("UPDATE customers SET consent_email_at = now() WHERE id = :id"), {"id": raw_id(consenting)}
        )

    invited = {}
    for who in (consenting, silent):
        k = await open_complaint(api, admin, who, channel="EMAIL")
        assert (await move(api, admin, k["id"], 1, **RESOLVE))["userErrors"] == []
        invited[who] = k
    sql = (
        "SELECT i.customer_id, i.complaint_id, i.channel, i.trigger, i.tier_at_invitation FROM survey_invitations i"
        " WHERE i.survey_id = :s ORDER BY i.id"
    )
    got = await rows(api, sql, s=raw_id(survey["id"]))
    assert [tuple(r) for r in got] == [
        (raw_id(consenting), raw_id(invited[consenting]["id"]), "email", "complaint_resolved", "bronze"),
        (raw_id(silent), raw_id(invited[silent]["id"]), "web", "complaint_resolved", "bronze"),  # no e-mail consent
    ]

    # A reopen and a second resolution do not invite again; a second complaint within the throttle neither.
    k = invited[consenting]
    assert (await move(api, admin, k["id"], 2, to="OPEN"))["userErrors"] == []
    assert (await move(api, admin, k["id"], 3, **RESOLVE))["userErrors"] == []
    other = await open_complaint(api, admin, consenting)
    assert (await move(api, admin, other["id"], 1, **RESOLVE))["userErrors"] == []
    assert len(await rows(api, sql, s=raw_id(survey["id"]))) == 2


# ---------------------------------------------------------------- who sees the clock


async def test_the_sla_fields_follow_the_role_table(api: Api, admin: str) -> None:
    partner, _ = await api.partner_token("Clockwork Shop")
    own = await create_customer(api, partner, name="Petra Partnered", select="id")
    await record_purchases(api, admin, {"customerId": own["id"], "amount": "10.00"})
    c = await open_complaint(api, partner, own["id"], description="My private words")
    fields = "firstResponseTimeLeft resolutionTimeLeft breached slaPaused escalatedAt firstResponseDueAt"
    query = f"query($id: ID!) {{ complaint(id: $id) {{ {fields} description events {{ kind }} }} }}"
    for who, roles in (("bob", ("support_agent",)), ("carol", ("analyst",)), ("dave", ("marketing",))):
        token = await api.user(who, *roles)
        body = await api.gql(token, query, {"id": c["id"]})
        if who == "dave":  # marketing: survey results, no complaints
            assert error_codes(body) == ["FORBIDDEN"]
            continue
        got = body["data"]["complaint"]
        assert got["firstResponseTimeLeft"] > 0
        assert got["breached"] is False
        if who == "carol":  # aggregates and clocks, no free text
            assert got["description"] is None
            assert error_codes(body) == ["FORBIDDEN_FIELD"]
        else:
            assert got["description"] == "My private words"
    body = await api.gql(partner, f"query($id: ID!) {{ complaint(id: $id) {{ {fields} }} }}", {"id": c["id"]})
    assert body["data"]["complaint"]["breached"] is False  # partners see the clock of their own complaints
    stranger, _ = await api.partner_token("Other Shop")
    body = await api.gql(stranger, f"query($id: ID!) {{ complaint(id: $id) {{ {fields} }} }}", {"id": c["id"]})
    assert error_codes(body) == ["NOT_FOUND"]


# ---------------------------------------------------------------- SLA policies

CREATE_POLICY = f"""mutation($input: CreateSlaPolicyInput!) {{ createSlaPolicy(input: $input) {{
  slaPolicy {{ id version name status createdBy targets {{ tier severity firstResponseMinutes resolutionMinutes }} }}
  {USER_ERRORS} }} }}"""
ACTIVATE_POLICY = f"""mutation($id: ID!) {{ activateSlaPolicy(id: $id) {{
  slaPolicy {{ id version status activatedBy }} {USER_ERRORS} }} }}"""
POLICIES = "{ slaPolicies { version status retiredAt } activeSlaPolicy { version name } }"


def targets(first: int, resolution: int, **overrides: tuple[int, int]) -> list[dict[str, Any]]:
    out = [
        {"tier": "*", "severity": s, "firstResponseMinutes": first, "resolutionMinutes": resolution}
        for s in ("LOW", "MEDIUM", "HIGH", "CRITICAL")
    ]
    for key, (f, r) in overrides.items():
        tier, severity = key.split("__")
        out.append({"tier": tier, "severity": severity.upper(), "firstResponseMinutes": f, "resolutionMinutes": r})
    return out


async def test_sla_policies_are_versioned_validated_and_activated_by_admins(fresh_database_url: Any) -> None:
    async with running_api(await fresh_database_url()) as api:
        admin = await api.user("alice", "admin")
        agent = await api.user("bob", "support_agent")
        customer = (await create_customer(api, admin, name="Polly Policy"))["id"]
        before = await open_complaint(api, admin, customer, severity="HIGH")

        bad = await api.gql(
            admin,
            CREATE_POLICY,
            {
                "input": {
                    "name": " ",
                    "targets": [
                        {"tier": "diamond", "severity": "LOW", "firstResponseMinutes": 60, "resolutionMinutes": 30},
                    ],
                }
            },
        )
        errors = payload(bad, "createSlaPolicy")["userErrors"]
        assert {e["field"] for e in errors} == {"name", "targets[0].tier", "targets[0].resolutionMinutes", "targets"}
        assert payload(bad, "createSlaPolicy")["slaPolicy"] is None
        denied = await api.gql(agent, CREATE_POLICY, {"input": {"name": "x", "targets": targets(1, 2)}})
        assert error_codes(denied) == ["FORBIDDEN"]

        created = ok(
            await api.gql(
                admin, CREATE_POLICY, {"input": {"name": "Faster", "targets": targets(30, 600, bronze__high=(20, 300))}}
            ),
            "createSlaPolicy",
        )["slaPolicy"]
        assert (created["version"], created["status"], created["createdBy"], len(created["targets"])) == (
            2,
            "DRAFT",
            "user:alice",
            5,
        )
        activated = ok(await api.gql(admin, ACTIVATE_POLICY, {"id": created["id"]}), "activateSlaPolicy")["slaPolicy"]
        assert (activated["status"], activated["activatedBy"]) == ("ACTIVE", "user:alice")
        again = await api.gql(admin, ACTIVATE_POLICY, {"id": created["id"]})
        assert [e["code"] for e in payload(again, "activateSlaPolicy")["userErrors"]] == ["CONFLICT"]

        listed = (await api.gql(agent, POLICIES))["data"]  # support agents read the policies
        assert [(p["version"], p["status"]) for p in listed["slaPolicies"]] == [(2, "ACTIVE"), (1, "RETIRED")]
        assert listed["slaPolicies"][1]["retiredAt"] is not None
        assert listed["activeSlaPolicy"] == {"version": 2, "name": "Faster"}

        after = await open_complaint(api, admin, customer, severity="HIGH")
        other = await open_complaint(api, admin, customer, severity="LOW")
        for c, version, minutes in ((before, 1, (240, 1440)), (after, 2, (20, 300)), (other, 2, (30, 600))):
            got = await sla_of(api, admin, c["id"])
            opened = dt.datetime.fromisoformat(got["openedAt"])
            assert got["slaPolicyVersion"] == version
            assert dt.datetime.fromisoformat(got["firstResponseDueAt"]) - opened == dt.timedelta(minutes=minutes[0])
            assert dt.datetime.fromisoformat(got["resolutionDueAt"]) - opened == dt.timedelta(minutes=minutes[1])
        audit = await rows(api, "SELECT action FROM audit_log WHERE action LIKE 'sla_policy.%' ORDER BY id")
        assert [a for (a,) in audit] == ["sla_policy.create", "sla_policy.activate"]
        partner, _ = await api.partner_token()
        assert error_codes(await api.gql(partner, POLICIES)) == ["FORBIDDEN", "FORBIDDEN"]


# ---------------------------------------------------------------- taxonomy

ADD_CATEGORY = f"""mutation($code: String!, $label: String!) {{ addComplaintCategory(code: $code, label: $label) {{
  taxon {{ code label active }} {USER_ERRORS} }} }}"""
DEACTIVATE_CATEGORY = f"""mutation($code: String!) {{ deactivateComplaintCategory(code: $code) {{
  taxon {{ code label active }} {USER_ERRORS} }} }}"""
ADD_CAUSE = f"""mutation($code: String!, $label: String!) {{ addRootCause(code: $code, label: $label) {{
  taxon {{ code active }} {USER_ERRORS} }} }}"""
DEACTIVATE_CAUSE = (
    f"""mutation($code: String!) {{ deactivateRootCause(code: $code) {{ taxon {{ code active }} {USER_ERRORS} }} }}"""
)


async def test_admins_manage_the_complaint_taxonomy(api: Api, admin: str) -> None:
    customer = (await create_customer(api, admin, name="Tax Onomy"))["id"]
    added = ok(
        await api.gql(admin, ADD_CATEGORY, {"code": "Returns", "label": " Returns  and refunds "}),
        "addComplaintCategory",
    )
    assert added["taxon"] == {"code": "returns", "label": "Returns and refunds", "active": True}
    dup = await api.gql(admin, ADD_CATEGORY, {"code": "returns", "label": "Again"})
    assert [e["code"] for e in payload(dup, "addComplaintCategory")["userErrors"]] == ["CONFLICT"]
    bad = await api.gql(admin, ADD_CATEGORY, {"code": "9 bad code!", "label": ""})
    assert sorted(e["field"] for e in payload(bad, "addComplaintCategory")["userErrors"]) == ["code", "label"]
    agent = await api.user("bob", "support_agent")
    assert error_codes(await api.gql(agent, ADD_CATEGORY, {"code": "spam", "label": "Spam"})) == ["FORBIDDEN"]

    old = await open_complaint(api, admin, customer, category="returns")
    gone = ok(await api.gql(admin, DEACTIVATE_CATEGORY, {"code": "returns"}), "deactivateComplaintCategory")
    assert gone["taxon"]["active"] is False
    body = await api.gql(
        admin,
        OPEN_COMPLAINT,
        {"input": {"customerId": customer, "subject": "s", "description": "d", "category": "returns"}},
    )
    assert [e["field"] for e in payload(body, "openComplaint")["userErrors"]] == ["category"]
    shown = await api.gql(
        admin, "query($id: ID!) { complaint(id: $id) { category { code active } } }", {"id": old["id"]}
    )
    assert shown["data"]["complaint"]["category"] == {"code": "returns", "active": False}
    listed = await api.gql(agent, "{ complaintCategories { code } }")
    assert "returns" not in [t["code"] for t in listed["data"]["complaintCategories"]]
    back = ok(await api.gql(admin, ADD_CATEGORY, {"code": "returns", "label": "Returns"}), "addComplaintCategory")
    assert back["taxon"] == {"code": "returns", "label": "Returns", "active": True}
    missing = await api.gql(admin, DEACTIVATE_CATEGORY, {"code": "nope"})
    assert [e["code"] for e in payload(missing, "deactivateComplaintCategory")["userErrors"]] == ["NOT_FOUND"]

    ok(await api.gql(admin, ADD_CAUSE, {"code": "weather", "label": "Weather"}), "addRootCause")
    c = await open_complaint(api, admin, customer)
    assert (await move(api, admin, c["id"], 1, **{**RESOLVE, "rootCauseCode": "weather"}))["userErrors"] == []
    ok(await api.gql(admin, DEACTIVATE_CAUSE, {"code": "weather"}), "deactivateRootCause")
    c2 = await open_complaint(api, admin, customer)
    refused = await move(api, admin, c2["id"], 1, **{**RESOLVE, "rootCauseCode": "weather"})
    assert [e["field"] for e in refused["userErrors"]] == ["rootCauseCode"]
    audit = await rows(api, "SELECT action, target_ids FROM audit_log WHERE action LIKE 'taxonomy.%' ORDER BY id")
    assert [(a, t) for a, t in audit][:3] == [
        ("taxonomy.add", ["returns"]),
        ("taxonomy.deactivate", ["returns"]),
        ("taxonomy.reactivate", ["returns"]),
    ]
