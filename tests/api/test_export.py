"""exportCustomerData: everything held about one customer, decrypted, as JSON; audited; admins and
data stewards only. dataQualityReport: missing fields, open duplicates, merges per month, staleness."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.api.helpers import (
    SUBMIT_RESPONSE,
    create_customer,
    create_nps_survey,
    error_codes,
    ok,
    open_complaint,
    raw_id,
    record_purchases,
    scalar,
)
from tests.conftest import Api

EXPORT = "query($id: ID!) { exportCustomerData(id: $id) }"
MERGE = """mutation($s: ID!, $d: ID!) { mergeCustomers(survivorId: $s, duplicateId: $d) { userErrors { message } } }"""
REPORT = """{ dataQualityReport { liveCustomers erasedCustomers mergedCustomers
  missing { field missing share } duplicatePairs duplicates { criterion pairs } mergesByMonth { month merges }
  metricsStaleness { customers withoutMetrics medianHours p90Hours maxHours olderThanDays staleCustomers } } }"""


async def test_export_holds_everything_about_the_customer(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(
        api,
        admin,
        name="Rosa Export",
        email="rosa@export.example",
        phone="+49 30 7654321",
        nationalId="RE-2020-77",
        birthDate="1988-08-08",
        address={"line1": "Export Str. 1", "city": "Hamburg", "country": "DE"},
    )
    twin = await create_customer(api, admin, name="Rosa Export", email="ROSA@export.example")
    await record_purchases(api, admin, {"customerId": c["id"], "amount": "42.00", "externalId": "EXP-1"})
    await record_purchases(api, admin, {"customerId": twin["id"], "amount": "8.00", "externalId": "EXP-2"})
    await open_complaint(api, admin, c["id"], description="The blue vase arrived broken.")
    survey = await create_nps_survey(api, admin)
    answers = [{"questionId": survey["questions"][0]["id"], "score": 10}]
    ok(
        await api.gql(
            admin,
            SUBMIT_RESPONSE,
            {"input": {"surveyId": survey["id"], "customerId": c["id"], "channel": "WEB", "answers": answers}},
        ),
        "submitSurveyResponse",
    )
    ok(
        await api.gql(
            admin,
            "mutation($c: ID!) { setCustomerConsent(customerId: $c, channel: EMAIL, given: true) { userErrors { message } } }",
            {"c": c["id"]},
        ),
        "setCustomerConsent",
    )
    ok(await api.gql(admin, MERGE, {"s": c["id"], "d": twin["id"]}), "mergeCustomers")

    steward = await api.user("dora", "data_steward")
    body = await api.gql(steward, EXPORT, {"id": c["id"]})
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]["exportCustomerData"]
    profile = data["customer"]
    assert profile["name"] == "Rosa Export"
    assert profile["email"] == "rosa@export.example"  # decrypted
    assert profile["phone"] == "+49307654321"
    assert profile["national_id"] == "RE-2020-77"
    assert profile["birth_date"] == "1988-08-08"
    assert profile["address"] == {"line1": "Export Str. 1", "city": "Hamburg", "country": "DE"}
    assert "email_bidx" not in profile
    assert data["consent"]["email"] is not None
    assert [(e["channel"], e["given"]) for e in data["consent"]["events"]] == [("email", True)]
    assert sorted(p["external_id"] for p in data["purchases"]) == ["EXP-1", "EXP-2"]  # the twin's moved here
    assert [x["description"] for x in data["complaints"]] == ["The blue vase arrived broken."]
    assert data["complaints"][0]["events"][0]["to_status"] == "new"
    assert data["surveyResponses"][0]["answers"][0]["score"] == 10
    assert data["tier"]["code"] == "bronze"
    assert data["tier"]["history"][0]["reason"].startswith("placed in bronze")
    assert data["metrics"]["order_count"] == 2
    assert [m["duplicate_id"] for m in data["merges"]] == [str(raw_id(twin["id"]))]
    assert [d["id"] for d in data["mergedDuplicates"]] == [str(raw_id(twin["id"]))]
    assert {"customers_merged", "consent_given"} <= {a["action"] for a in data["auditEntries"]}

    exports = await scalar(
        api,
        "SELECT json_agg(actor) FROM audit_log WHERE action = 'customer_exported' AND :c = ANY(target_ids)",
        c=str(raw_id(c["id"])),
    )
    assert exports == ["user:dora"]


async def test_export_and_report_are_refused_to_support_agents_and_partners(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Hidden Person")
    shop, _ = await api.partner_token()
    for token in (await api.user("bob", "support_agent"), await api.user("carol", "analyst"), shop):
        assert error_codes(await api.gql(token, EXPORT, {"id": c["id"]})) == ["FORBIDDEN"]
        assert error_codes(await api.gql(token, REPORT)) == ["FORBIDDEN"]
    assert await scalar(api, "SELECT count(*) FROM audit_log WHERE action = 'customer_exported'") == 0
    unknown = await api.gql(admin, EXPORT, {"id": "Q3VzdG9tZXI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"})
    assert error_codes(unknown) == ["NOT_FOUND"]


async def test_export_is_refused_to_a_role_that_may_not_read_every_field_in_full(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Masked Person", nationalId="MP-1234-99")
    for grant in (
        'grantAccess(role: "data_steward", object: "Customer.nationalId", action: READ, effect: DENY)',
        'grantAccess(role: "data_steward", object: "Customer.nationalId", action: READ_MASKED)',
    ):
        ok(await api.gql(admin, f"mutation {{ {grant} {{ ok userErrors {{ message }} }} }}"), "grantAccess")
    steward = await api.user("dora", "data_steward")
    seen = await api.gql(steward, "query($id: ID!) { customer(id: $id) { nationalId } }", {"id": c["id"]})
    assert seen["data"]["customer"]["nationalId"] not in (None, "MP-1234-99")  # masked for this role

    body = await api.gql(steward, EXPORT, {"id": c["id"]})
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"]["exportCustomerData"] is None
    assert "Customer.nationalId" in body["errors"][0]["message"]
    assert "MP-1234-99" not in str(body)
    assert await scalar(api, "SELECT count(*) FROM audit_log WHERE action = 'customer_exported'") == 0
    assert "errors" not in await api.gql(admin, EXPORT, {"id": c["id"]})  # admins read everything in full


async def test_data_quality_report(api: Api) -> None:
    admin = await api.user("alice", "admin")
    full = {"email": "q1@report.example", "phone": "+4930100100", "birthDate": "1980-01-01"}
    a = await create_customer(
        api, admin, name="Quinn One", **full, address={"line1": "A 1", "city": "Bonn", "country": "DE"}
    )
    await create_customer(api, admin, name="Quinn Two", email="Q1@report.example")  # duplicate by e-mail
    await create_customer(api, admin, name="Quinn Three", phone="+49 30 100100")  # duplicate by phone
    d = await create_customer(api, admin, name="Quinn Four", email="q4@report.example")
    e = await create_customer(api, admin, name="Quinn Five", email="q4@report.example")
    ok(await api.gql(admin, MERGE, {"s": d["id"], "d": e["id"]}), "mergeCustomers")
    ok(
        await api.gql(
            admin, "mutation($id: ID!) { eraseCustomer(id: $id) { userErrors { message } } }", {"id": a["id"]}
        ),
        "eraseCustomer",
    )
    # One customer's metrics were last computed ten days ago.
    async with api.services.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(
            text(
                "UPDATE customer_metrics SET computed_at = now() - interval '10 days'"
                " WHERE customer_id = (SELECT id FROM customers WHERE name = 'Quinn Three')"
            )
        )

    body = await api.gql(admin, REPORT)
    assert "errors" not in body, body
    r = body["data"]["dataQualityReport"]
    assert (r["liveCustomers"], r["erasedCustomers"], r["mergedCustomers"]) == (3, 1, 1)
    missing = {m["field"]: (m["missing"], m["share"]) for m in r["missing"]}
    # live: Quinn Two (e-mail), Quinn Three (phone), Quinn Four (e-mail, plus Five's nothing more)
    assert missing == {
        "email": (1, round(1 / 3, 4)),
        "phone": (2, round(2 / 3, 4)),
        "birth_date": (3, 1.0),
        "address": (3, 1.0),
    }
    # The erased customer left the candidates: Two and Three have no partner left.
    assert r["duplicatePairs"] == 0
    assert {x["criterion"]: x["pairs"] for x in r["duplicates"]} == {"EMAIL": 0, "PHONE": 0, "NAME_DOB": 0}
    assert r["mergesByMonth"] == [{"month": dt.datetime.now(dt.UTC).strftime("%Y-%m"), "merges": 1}]
    st = r["metricsStaleness"]
    assert st["customers"] == 3
    assert st["withoutMetrics"] == 0
    assert st["olderThanDays"] == 2
    assert st["staleCustomers"] == 1
    assert 239 < st["maxHours"] < 241
    assert st["medianHours"] < 1


async def test_report_counts_open_duplicates_per_criterion(api: Api) -> None:
    admin = await api.user("alice", "admin")
    for name, email, phone in (("Pat A", "pat@x.example", "+4930200200"), ("Pat B", "PAT@x.example", "+4930200200")):
        await create_customer(api, admin, name=name, email=email, phone=phone)
    await create_customer(api, admin, name="Lee C", phone="+4930300300")
    await create_customer(api, admin, name="Lee D", phone="030 300300")
    r = (await api.gql(admin, REPORT))["data"]["dataQualityReport"]
    assert r["duplicatePairs"] == 2
    assert {x["criterion"]: x["pairs"] for x in r["duplicates"]} == {"EMAIL": 1, "PHONE": 2, "NAME_DOB": 0}


async def test_audit_entries_are_exported_only_with_their_grant_and_without_other_customers(api: Api) -> None:
    """The export hands out audit rows too: refused to a role that may not read AuditEntry in full, and an
    entry about several customers (a page's sensitive-read audit) keeps only the fact for this one."""
    admin = await api.user("alice", "admin")
    mine = await create_customer(api, admin, name="Olga Own", email="olga@own.example", nationalId="OO-1")
    other = await create_customer(api, admin, name="Peter Other", email="peter@other.example", nationalId="PO-2")
    page = await api.gql(admin, "{ customers(first: 10) { edges { node { nationalId } } } }")  # one audit row, two ids
    assert "errors" not in page
    exported = await api.gql(admin, EXPORT, {"id": mine["id"]})
    entries = exported["data"]["exportCustomerData"]["auditEntries"]
    reads = [e for e in entries if e["action"] == "sensitive_read"]
    assert len(reads) == 1
    assert reads[0]["target_ids"] == [str(raw_id(mine["id"]))]  # not the other customer's id
    assert str(raw_id(other["id"])) not in str(exported)
    assert "peter@other.example" not in str(exported)

    ok(
        await api.gql(
            admin,
            'mutation { grantAccess(role: "data_steward", object: "AuditEntry.*", action: READ, effect: DENY)'
            " { ok userErrors { message } } }",
        ),
        "grantAccess",
    )
    refused = await api.gql(await api.user("dora", "data_steward"), EXPORT, {"id": mine["id"]})
    assert error_codes(refused) == ["FORBIDDEN"]
    assert "AuditEntry" in refused["errors"][0]["message"]
