"""eraseCustomer: every sensitive value of the customer is gone from every text/jsonb/array column of
every table (searched after the fact), decrypted reads and the export return none of them, aggregates
stay, a second erase is refused, and only admins may erase."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import text

from tests.api.helpers import (
    CREATE_SURVEY,
    SUBMIT_RESPONSE,
    TRANSITION_COMPLAINT,
    create_customer,
    error_codes,
    ok,
    open_complaint,
    payload,
    raw_id,
    record_purchases,
    scalar,
)
from tests.conftest import Api

NAME = "Zelda Quartermaine"
EMAIL = "zelda.quartermaine@erase.example"
PHONE = "+49309876543"
NATIONAL_ID = "ZQ-4711-0815"
BIRTH = "1979-03-14"
STREET = "Kastanienallee 77"
REF = "ERASE-REF-9911"
VALUES = (NAME, EMAIL, PHONE, NATIONAL_ID, BIRTH, STREET, REF)

ERASE = (
    """mutation($id: ID!) { eraseCustomer(id: $id) { erasedId erasedAt erased userErrors { field code message } } }"""
)
READ = """query($id: ID!) { customer(id: $id) {
  name email phone nationalId birthDate externalRef address { line1 city } consent { email sms phone }
  metrics { orderCount lifetimeSpend } tier { code }
  complaints { edges { node { subject description events { note } } } }
  surveyResponses { edges { node { answers { text score } } } } } }"""
EXPORT = "query($id: ID!) { exportCustomerData(id: $id) }"


async def _search_everywhere(api: Api, needles: tuple[str, ...]) -> list[str]:
    """Every text-like column of every table in the public schema, cast to text, searched for each value."""
    hits: list[str] = []
    async with api.services.engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT c.table_name, c.column_name FROM information_schema.columns c"
                    " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
                    " AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'"
                    " WHERE c.table_schema = 'public'"
                    " AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'USER-DEFINED')"
                )
            )
        ).all()
        assert len(columns) > 40
        for table, column in columns:
            for needle in needles:
                found = (
                    await conn.execute(
                        text(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE :p'), {"p": f"%{needle}%"}
                    )
                ).scalar_one()
                if found:
                    hits.append(f"{table}.{column} holds {needle!r}")
    return hits


async def _customer_with_everything(api: Api, admin: str) -> dict[str, Any]:
    customer = await create_customer(
        api,
        admin,
        name=NAME,
        email=EMAIL,
        phone="+49 30 9876543",
        nationalId=NATIONAL_ID,
        birthDate=BIRTH,
        externalRef=REF,
        address={"line1": STREET, "city": "Berlin", "country": "DE"},
    )
    cid = customer["id"]
    await record_purchases(api, admin, {"customerId": cid, "amount": "120.00"}, {"customerId": cid, "amount": "80.50"})
    complaint = await open_complaint(
        api, admin, cid, subject=f"Call back {NAME}", description=f"{NAME} ({EMAIL}, {PHONE}) lives at {STREET}."
    )
    ok(
        await api.gql(
            admin,
            TRANSITION_COMPLAINT,
            {
                "input": {
                    "id": complaint["id"],
                    "expectedVersion": complaint["version"],
                    "to": "OPEN",
                    "assignee": "bob",
                    "note": f"phoned {PHONE}, national id {NATIONAL_ID}",
                }
            },
        ),
        "transitionComplaint",
    )
    survey = ok(
        await api.gql(
            admin,
            CREATE_SURVEY,
            {
                "input": {
                    "title": "How was it",
                    "channels": ["WEB"],
                    "questions": [
                        {"kind": "NPS", "dimension": "loyalty", "prompt": "?"},
                        {"kind": "TEXT", "dimension": "comment", "prompt": "Anything else?", "required": False},
                    ],
                }
            },
        ),
        "createSurvey",
    )["survey"]
    q_nps, q_text = (q["id"] for q in survey["questions"])
    ok(
        await api.gql(
            admin,
            SUBMIT_RESPONSE,
            {
                "input": {
                    "surveyId": survey["id"],
                    "customerId": cid,
                    "channel": "WEB",
                    "answers": [
                        {"questionId": q_nps, "score": 3},
                        {"questionId": q_text, "text": f"This is {NAME}, write to {EMAIL}"},
                    ],
                }
            },
        ),
        "submitSurveyResponse",
    )
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    ok(
        await api.gql(
            admin,
            "mutation($i: OverrideCustomerTierInput!) { overrideCustomerTier(input: $i) { userErrors { message } } }",
            {"i": {"customerId": cid, "tier": "gold", "reason": f"VIP: {NAME} asked by phone", "expiresAt": expires}},
        ),
        "overrideCustomerTier",
    )
    ok(
        await api.gql(
            admin,
            "mutation($c: ID!) { setCustomerConsent(customerId: $c, channel: EMAIL, given: true) { userErrors { message } } }",
            {"c": cid},
        ),
        "setCustomerConsent",
    )
    # Job payloads that quote the customer: a finished one and one still waiting.
    async with api.services.engine.begin() as conn:
        for status in ("succeeded", "todo"):
            await conn.execute(
                text(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
                    " VALUES ('tierwise', 'tierwise.notify', CAST(:a AS jsonb), CAST(:s AS procrastinate_job_status))"
                ),
                # the waiting one in another case: found case-blind, it must be scrubbed case-blind too
                {
                    "a": json.dumps(
                        {
                            "to": EMAIL if status == "succeeded" else EMAIL.upper(),
                            "name": NAME,
                            "customer": str(raw_id(cid)),
                        }
                    ),
                    "s": status,
                },
            )
    # Another customer's audit payload that quotes her (a colleague's override mentions her e-mail).
    other = await create_customer(api, admin, name="Someone Else")
    ok(
        await api.gql(
            admin,
            "mutation($i: OverrideCustomerTierInput!) { overrideCustomerTier(input: $i) { userErrors { message } } }",
            {
                "i": {
                    "customerId": other["id"],
                    "tier": "silver",
                    "reason": f"referred by {EMAIL}",
                    "expiresAt": expires,
                }
            },
        ),
        "overrideCustomerTier",
    )
    return customer


async def test_erase_removes_every_value_everywhere_and_keeps_the_aggregates(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await _customer_with_everything(api, admin)
    cid = customer["id"]
    before = (await api.gql(admin, READ, {"id": cid}))["data"]["customer"]
    assert before["email"] == EMAIL
    exported = json.dumps((await api.gql(admin, EXPORT, {"id": cid}))["data"]["exportCustomerData"])
    for value in VALUES:  # the values are there to be found before (through decryption)
        assert value in exported, value
    spend = await scalar(api, "SELECT sum(amount) FROM purchases WHERE customer_id = :c", c=raw_id(cid))
    tiers_before = await scalar(api, "SELECT count(*) FROM tier_changes WHERE customer_id = :c", c=raw_id(cid))

    done = ok(await api.gql(admin, ERASE, {"id": cid}), "eraseCustomer")
    assert done["erasedId"] == cid
    assert done["erased"]["complaints"] == 1
    assert done["erased"]["surveyAnswers"] == 1
    assert done["erased"]["jobs"] >= 2  # ours, and any job the writes above deferred with her id
    kept = await scalar(
        api, "SELECT json_agg(status::text) FROM procrastinate_jobs WHERE task_name = 'tierwise.notify'"
    )
    assert kept == ["todo"]  # the finished job is gone, the waiting one runs without her values
    assert done["erased"]["auditEntries"] >= 3  # her override, her consent, the colleague's override

    assert await _search_everywhere(api, VALUES) == []
    # the blind indexes (keyed hashes: anyone with the key could link a new record to her) are gone too
    bidx = await scalar(
        api,
        "SELECT json_agg(json_build_array(email_bidx, phone_bidx, national_id_bidx, name_dob_bidx))"
        " FROM customers WHERE id = :id",
        id=raw_id(cid),
    )
    assert bidx == [[None, None, None, None]]

    after = await api.gql(admin, READ, {"id": cid})
    assert "errors" not in after, after
    node = after["data"]["customer"]
    assert node["name"] == "erased customer"
    for key in ("email", "phone", "nationalId", "birthDate", "externalRef", "address"):
        assert node[key] is None, key
    assert node["consent"] == {"email": None, "sms": None, "phone": None}
    complaint = node["complaints"]["edges"][0]["node"]
    assert complaint == {
        "subject": "[erased]",
        "description": "[erased]",
        "events": [{"note": None}, {"note": "[erased]"}],
    }
    answers = node["surveyResponses"]["edges"][0]["node"]["answers"]
    assert sorted((a["score"], a["text"]) for a in answers if a["score"] is not None) == [(3, None)]
    assert [a["text"] for a in answers if a["score"] is None] == ["[erased]"]
    exported_after = json.dumps((await api.gql(admin, EXPORT, {"id": cid}))["data"]["exportCustomerData"])
    for value in VALUES:
        assert value not in exported_after, value
    # Aggregates stay: purchases, metrics, tier and its history.
    assert node["metrics"] == {"orderCount": 2, "lifetimeSpend": "200.50"}
    assert node["tier"] == {"code": "gold"}
    assert await scalar(api, "SELECT sum(amount) FROM purchases WHERE customer_id = :c", c=raw_id(cid)) == spend
    assert await scalar(api, "SELECT count(*) FROM tier_changes WHERE customer_id = :c", c=raw_id(cid)) == tiers_before
    audit = await scalar(
        api,
        "SELECT json_agg(actor) FROM audit_log WHERE action = 'customer_erased' AND :c = ANY(target_ids)",
        c=str(raw_id(cid)),
    )
    assert audit == ["user:alice"]


async def test_erasure_cannot_be_repeated_or_undone(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name=NAME, email=EMAIL)
    ok(await api.gql(admin, ERASE, {"id": customer["id"]}), "eraseCustomer")
    again = payload(await api.gql(admin, ERASE, {"id": customer["id"]}), "eraseCustomer")
    assert again["userErrors"][0]["code"] == "CONFLICT"
    assert "erased already" in again["userErrors"][0]["message"]
    # Writing personal data back onto the erased record is refused.
    version = int(await scalar(api, "SELECT version FROM customers WHERE id = :c", c=raw_id(customer["id"])))
    body = await api.gql(
        admin,
        "mutation($i: UpdateCustomerInput!) { updateCustomer(input: $i) { userErrors { code } } }",
        {"i": {"id": customer["id"], "expectedVersion": version, "email": EMAIL}},
    )
    assert payload(body, "updateCustomer")["userErrors"], body
    assert await scalar(api, "SELECT email_bidx FROM customers WHERE id = :c", c=raw_id(customer["id"])) is None


async def test_only_admins_erase(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name=NAME, email=EMAIL)
    for token in (
        await api.user("bob", "support_agent"),
        await api.user("dora", "data_steward"),
        (await api.partner_token())[0],
    ):
        assert error_codes(await api.gql(token, ERASE, {"id": customer["id"]})) == ["FORBIDDEN"]
    assert await scalar(api, "SELECT count(*) FROM customers WHERE erased_at IS NOT NULL") == 0


async def test_erasing_a_survivor_erases_the_duplicates_merged_into_it(api: Api) -> None:
    admin = await api.user("alice", "admin")
    survivor = await create_customer(api, admin, name=NAME, email=EMAIL)
    twin = await create_customer(api, admin, name="Zelda Q.", email=EMAIL.upper(), nationalId=NATIONAL_ID)
    merge = "mutation($s: ID!, $d: ID!) { mergeCustomers(survivorId: $s, duplicateId: $d) { userErrors { message } } }"
    ok(await api.gql(admin, merge, {"s": survivor["id"], "d": twin["id"]}), "mergeCustomers")
    done = ok(await api.gql(admin, ERASE, {"id": survivor["id"]}), "eraseCustomer")
    assert done["erased"]["customers"] == 2
    assert await _search_everywhere(api, (NAME, EMAIL, NATIONAL_ID, "Zelda Q.")) == []
    erased = await scalar(api, "SELECT count(*) FROM customers WHERE erased_at IS NOT NULL")
    assert erased == 2


async def test_a_partner_token_erases_only_its_own_customers(api: Api) -> None:
    """Even a partner token holding the admin role (refused at creation; here forced into the database)
    stays in its row scope."""
    north, _ = await api.forced_partner_token("North Shop", "admin")
    south, _ = await api.partner_token("South Shop")
    theirs = await create_customer(api, south, name="Sven South", email="sven@south.example")
    refused = await api.gql(north, ERASE, {"id": theirs["id"]})
    assert [e["code"] for e in refused["data"]["eraseCustomer"]["userErrors"]] == ["NOT_FOUND"]
    assert await scalar(api, "SELECT count(*) FROM customers WHERE erased_at IS NOT NULL") == 0
    mine = await create_customer(api, north, name="Nora North", email="nora@north.example")
    done = await api.gql(north, ERASE, {"id": mine["id"]})
    assert done["data"]["eraseCustomer"]["userErrors"] == [], done
    assert await scalar(api, "SELECT count(*) FROM customers WHERE erased_at IS NOT NULL") == 1
