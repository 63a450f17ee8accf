"""Issue 18, "behaviour that surprised": an invitation sent on another channel than the one asked for
says so and why; locales are BCP 47 tags, stored in one normal form."""

from __future__ import annotations

from sqlalchemy import text

from tests.api.helpers import (
    CREATE_CUSTOMER,
    UPDATE_CUSTOMER,
    USER_ERRORS,
    create_customer,
    create_nps_survey,
    ok,
    payload,
    raw_id,
    snapshot,
)
from tests.conftest import Api

INVITE = f"""mutation($input: InviteToSurveyInput!) {{
  inviteToSurvey(input: $input) {{
    invitations {{ customer {{ id }} channel requestedChannel channelReason }}
    skipped {{ customerId reason }}
    {USER_ERRORS}
  }}
}}"""
CONSENT = """mutation($id: ID!, $channel: ConsentChannel!) {
  setCustomerConsent(customerId: $id, channel: $channel, given: true) { userErrors { code } } }"""


async def test_an_invitation_on_another_channel_says_which_was_asked_for_and_why(api: Api) -> None:
    admin = await api.user("alice", "admin")
    survey = await create_nps_survey(api, admin, channels=("EMAIL", "SMS", "WEB"))
    no_consent = await create_customer(api, admin, name="Nora Noconsent", email="nora@example.com")
    no_address = await create_customer(api, admin, name="Abe Noaddress")
    consented = await create_customer(api, admin, name="Cara Consent", email="cara@example.com")
    ok(await api.gql(admin, CONSENT, {"id": consented["id"], "channel": "EMAIL"}), "setCustomerConsent")
    no_number = await create_customer(api, admin, name="Sid Nonumber")

    async def invite(customer: dict[str, str], channel: str | None) -> dict[str, object]:
        values = {"surveyId": survey["id"], "customerIds": [customer["id"]], "channel": channel}
        invited = ok(await api.gql(admin, INVITE, {"input": values}), "inviteToSurvey")["invitations"]
        assert len(invited) == 1
        found: dict[str, object] = invited[0]
        assert found.pop("customer") == {"id": customer["id"]}
        return found

    assert await invite(no_consent, "EMAIL") == {
        "channel": "WEB",
        "requestedChannel": "EMAIL",
        "channelReason": "no_email_consent",
    }
    assert await invite(no_address, "EMAIL") == {
        "channel": "WEB",
        "requestedChannel": "EMAIL",
        "channelReason": "no_email_address",
    }
    assert await invite(no_number, "SMS") == {
        "channel": "WEB",
        "requestedChannel": "SMS",
        "channelReason": "no_phone_number",
    }
    assert await invite(consented, "EMAIL") == {"channel": "EMAIL", "requestedChannel": "EMAIL", "channelReason": None}


async def test_an_invitation_without_a_requested_channel_has_no_reason(api: Api) -> None:
    admin = await api.user("alice", "admin")
    survey = await create_nps_survey(api, admin, channels=("EMAIL", "WEB"))
    customer = await create_customer(api, admin, name="Nora Noconsent", email="nora@example.com")
    values = {"surveyId": survey["id"], "customerIds": [customer["id"]]}
    invited = ok(await api.gql(admin, INVITE, {"input": values}), "inviteToSurvey")["invitations"]
    assert [(i["channel"], i["requestedChannel"], i["channelReason"]) for i in invited] == [("WEB", None, None)]


LOCALE_QUERY = "query($id: ID!) { customer(id: $id) { locale } }"


async def test_locales_are_bcp47_tags_stored_in_one_normal_form(api: Api) -> None:
    admin = await api.user("alice", "admin")
    accepted = {
        "en-GB": "en_GB",
        "en_US": "en_US",
        "EN-gb": "en_GB",
        "zh-Hant-TW": "zh_Hant_TW",
        "sr-latn-rs": "sr_Latn_RS",
        "es-419": "es_419",
        "de-CH-1996": "de_CH_1996",
        "gsw": "gsw",
    }
    for given, stored in accepted.items():
        made = ok(
            await api.gql(admin, CREATE_CUSTOMER, {"input": {"name": "Lou Locale", "locale": given}}), "createCustomer"
        )
        customer = made["customer"]
        got = await api.gql(admin, LOCALE_QUERY, {"id": customer["id"]})
        assert got["data"]["customer"]["locale"] == stored, given
    updated = ok(
        await api.gql(
            admin, UPDATE_CUSTOMER, {"input": {"id": customer["id"], "expectedVersion": 1, "locale": "pt-BR"}}
        ),
        "updateCustomer",
    )
    assert updated["customer"]["id"] == customer["id"]
    async with api.services.engine.connect() as conn:
        column = (
            await conn.execute(text("SELECT locale FROM customers WHERE id = :id"), {"id": raw_id(customer["id"])})
        ).scalar()
    assert column == "pt_BR"  # the normal form is what is stored, not only what is shown
    got = await api.gql(admin, LOCALE_QUERY, {"id": customer["id"]})
    assert got["data"]["customer"]["locale"] == "pt_BR"


async def test_a_locale_that_is_not_a_known_bcp47_tag_is_refused(api: Api) -> None:
    admin = await api.user("alice", "admin")
    before = await snapshot(api)
    refused = {
        "english": "unknown language 'english' in locale",
        "xx-GB": "unknown language 'xx' in locale",
        "en-XX": "unknown region 'XX' in locale",
        "en-US-u-ca-gregory": None,
        "en--GB": None,
        "en GB": None,
    }
    for given, message in refused.items():
        body = await api.gql(admin, CREATE_CUSTOMER, {"input": {"name": "Lou Locale", "locale": given}})
        errors = payload(body, "createCustomer")["userErrors"]
        assert [(e["field"], e["code"]) for e in errors] == [("locale", "INVALID")], given
        assert errors[0]["message"] == (
            message
            or "a locale is a BCP 47 language tag such as en-GB, en_US or zh-Hant-TW "
            "(language, script, region, variant)"
        ), given
    assert await snapshot(api) == before
