"""Consent per channel: set and withdrawn with timestamps and a history; survey invitations on a
channel need consent on it (manual and triggered); consent-gated reads follow it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.api.helpers import (
    create_customer,
    create_nps_survey,
    error_codes,
    ok,
    payload,
    raw_id,
    record_purchases,
    scalar,
)
from tests.conftest import Api

SET = """mutation($c: ID!, $ch: ConsentChannel!, $g: Boolean!, $v: Int) {
  setCustomerConsent(customerId: $c, channel: $ch, given: $g, expectedVersion: $v) {
    changed customer { version consent { email sms phone } } userErrors { field code message } } }"""
INVITE = """mutation($s: ID!, $c: [ID!]!) { inviteToSurvey(input: {surveyId: $s, customerIds: $c}) {
  invitations { channel } skipped { reason } userErrors { message } } }"""
EMAIL_READ = "query($id: ID!) { customer(id: $id) { name email } }"


async def _set(api: Api, token: str, cid: str, channel: str, given: bool, **extra: Any) -> dict[str, Any]:
    return payload(await api.gql(token, SET, {"c": cid, "ch": channel, "g": given, **extra}), "setCustomerConsent")


async def test_consent_is_given_withdrawn_and_recorded(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Ivo Cole", email="ivo@cole.example", phone="+4930111222")
    given = await _set(api, admin, c["id"], "EMAIL", True, v=c["version"])
    assert given["userErrors"] == []
    assert given["changed"] is True
    at = given["customer"]["consent"]["email"]
    assert at is not None
    assert given["customer"]["consent"]["sms"] is None
    again = await _set(api, admin, c["id"], "EMAIL", True)
    assert again["changed"] is False
    assert again["customer"]["consent"]["email"] == at  # the first consent's time stays
    stale = await _set(api, admin, c["id"], "SMS", True, v=c["version"])
    assert stale["userErrors"][0]["code"] == "CONFLICT"
    withdrawn = await _set(api, admin, c["id"], "EMAIL", False)
    assert withdrawn["changed"] is True
    assert withdrawn["customer"]["consent"]["email"] is None
    history = await scalar(
        api,
        "SELECT json_agg(json_build_object('channel', channel, 'given', given, 'actor', actor) ORDER BY id)"
        " FROM consent_events WHERE customer_id = :c",
        c=raw_id(c["id"]),
    )
    assert history == [
        {"channel": "email", "given": True, "actor": "user:alice"},
        {"channel": "email", "given": False, "actor": "user:alice"},
    ]
    actions = await scalar(
        api,
        "SELECT json_agg(action ORDER BY id) FROM audit_log WHERE action LIKE 'consent%' AND :c = ANY(target_ids)",
        c=str(raw_id(c["id"])),
    )
    assert actions == ["consent_given", "consent_withdrawn"]


async def test_invitations_need_consent_on_their_channel(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Ena Ray", email="ena@ray.example", phone="+4930333444")
    email_survey = await create_nps_survey(api, admin, channels=("EMAIL",))
    skipped = ok(await api.gql(admin, INVITE, {"s": email_survey["id"], "c": [c["id"]]}), "inviteToSurvey")
    assert skipped == {"invitations": [], "skipped": [{"reason": "no_channel"}], "userErrors": []}
    await _set(api, admin, c["id"], "SMS", True)  # consent on another channel does not help
    skipped = ok(await api.gql(admin, INVITE, {"s": email_survey["id"], "c": [c["id"]]}), "inviteToSurvey")
    assert skipped["skipped"] == [{"reason": "no_channel"}]
    await _set(api, admin, c["id"], "EMAIL", True)
    sent = ok(await api.gql(admin, INVITE, {"s": email_survey["id"], "c": [c["id"]]}), "inviteToSurvey")
    assert sent["invitations"] == [{"channel": "EMAIL"}]
    assert await scalar(api, "SELECT count(*) FROM survey_invitations WHERE channel = 'email'") == 1


async def test_triggered_invitations_respect_consent(api: Api) -> None:
    from infra.survey_triggers import send_due_invitations

    admin = await api.user("alice", "admin")
    without = await create_customer(api, admin, name="No Consent", email="no@consent.example")
    with_ = await create_customer(api, admin, name="Has Consent", email="has@consent.example")
    await _set(api, admin, with_["id"], "EMAIL", True)
    body = await api.gql(
        admin,
        """mutation { createSurvey(input: {title: "Periodic", channels: [EMAIL], trigger: PERIODIC,
           questions: [{kind: NPS, dimension: "loyalty", prompt: "?"}]}) { survey { id } userErrors { message } } }""",
    )
    ok(body, "createSurvey")
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=200)).isoformat()
    for cust in (without, with_):  # customers of the last year are due for the periodic survey
        await record_purchases(api, admin, {"customerId": cust["id"], "amount": "30.00", "purchasedAt": long_ago})
    async with api.services.engine.begin() as conn:
        counts = await send_due_invitations(conn, api.settings)
    assert counts == {"periodic": 1, "skipped": 1}  # the one without e-mail consent: no channel
    invited = await scalar(api, "SELECT json_agg(customer_id::text) FROM survey_invitations")
    assert invited == [str(raw_id(with_["id"]))]
    assert str(raw_id(without["id"])) not in invited


async def test_consent_gated_reads_follow_consent(api: Api) -> None:
    admin = await api.user("alice", "admin")
    marketing = await api.user("mia", "marketing")
    c = await create_customer(api, admin, name="Uma Lind", email="uma@lind.example")
    hidden = await api.gql(marketing, EMAIL_READ, {"id": c["id"]})
    assert hidden["data"]["customer"] == {"name": "Uma Lind", "email": None}
    assert error_codes(hidden) == ["FORBIDDEN_FIELD"]
    await _set(api, admin, c["id"], "EMAIL", True)
    shown = await api.gql(marketing, EMAIL_READ, {"id": c["id"]})
    assert shown["data"]["customer"] == {"name": "Uma Lind", "email": "uma@lind.example"}
    await _set(api, admin, c["id"], "EMAIL", False)
    again = await api.gql(marketing, EMAIL_READ, {"id": c["id"]})
    assert again["data"]["customer"]["email"] is None


async def test_who_may_set_consent(api: Api) -> None:
    admin = await api.user("alice", "admin")
    bob = await api.user("bob", "support_agent")
    carol = await api.user("carol", "analyst")
    shop, _ = await api.partner_token("Consent Shop")
    other_shop, _ = await api.partner_token("Other Consent Shop")
    mine = await create_customer(api, shop, name="Shop Customer", email="shop@customer.example")
    assert (await _set(api, bob, mine["id"], "PHONE", True))["changed"] is True
    assert (await _set(api, shop, mine["id"], "SMS", True))["changed"] is True
    foreign = await _set(api, other_shop, mine["id"], "SMS", False)
    assert foreign["userErrors"][0]["code"] == "NOT_FOUND"
    assert error_codes(await api.gql(carol, SET, {"c": mine["id"], "ch": "EMAIL", "g": True})) == ["FORBIDDEN"]
    consent = await scalar(
        api,
        "SELECT json_build_object('e', consent_email_at IS NOT NULL, 's', consent_sms_at IS NOT NULL,"
        " 'p', consent_phone_at IS NOT NULL) FROM customers WHERE id = :c",
        c=raw_id(mine["id"]),
    )
    assert consent == {"e": False, "s": True, "p": True}
    assert (await _set(api, admin, mine["id"], "EMAIL", True))["changed"] is True  # admins may, on any customer
