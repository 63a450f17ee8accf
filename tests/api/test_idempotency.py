"""Idempotent creates under a race (issue 17 F7) and keys reused with other content (issue 18).

20 callers send the same create at once, over HTTP through the real app: its connection pool gives
them concurrent transactions, so their inserts really collide in PostgreSQL. Every caller must get
the same object, nobody an error, one row must be stored and its effects (metrics, SLA clock, churn
queueing, report summaries) must count it once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.helpers import (
    OPEN_COMPLAINT,
    RECORD_PURCHASES,
    SUBMIT_RESPONSE,
    USER_ERRORS,
    create_customer,
    create_nps_survey,
    ok,
    payload,
    scalar,
    snapshot,
)
from tests.conftest import Api

N = 20


async def _race(api: Api, token: str, query: str, variables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    bodies = await asyncio.gather(*(api.gql(token, query, v) for v in variables))
    assert [b["_status"] for b in bodies] == [200] * len(variables)
    assert [b.get("errors") for b in bodies] == [None] * len(variables), [b for b in bodies if b.get("errors")]
    return bodies


async def test_concurrent_open_complaint_with_one_external_id_opens_one(api: Api) -> None:
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Rae Race")
    values = {
        "customerId": customer["id"],
        "subject": "Broken lid",
        "description": "Arrived broken.",
        "category": "product_quality",
        "externalId": "T-race",
    }
    bodies = await _race(api, partner, OPEN_COMPLAINT, [{"input": values}] * N)
    results = [ok(b, "openComplaint")["complaint"] for b in bodies]
    assert len({r["id"] for r in results}) == 1
    assert await scalar(api, "SELECT count(*) FROM complaints") == 1
    assert await scalar(api, "SELECT count(*) FROM complaint_events") == 1
    assert await scalar(api, "SELECT open_complaints FROM customer_metrics") == 1
    assert await scalar(api, "SELECT complaints_12m FROM customer_metrics") == 1
    assert await scalar(api, "SELECT count(*) FROM report_complaint_clocks") == 1


async def test_concurrent_complaints_with_one_external_id_and_other_content_have_one_winner(api: Api) -> None:
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Rae Race")
    variables = [
        {
            "input": {
                "customerId": customer["id"],
                "subject": f"Subject {n}",
                "description": "Arrived broken.",
                "category": "product_quality",
                "externalId": "T-clash",
            }
        }
        for n in range(N)
    ]
    bodies = await _race(api, partner, OPEN_COMPLAINT, variables)
    results = [payload(b, "openComplaint") for b in bodies]
    winners = [r for r in results if r["complaint"]]
    assert len(winners) == 1
    losers = [r["userErrors"] for r in results if not r["complaint"]]
    assert losers == [
        [
            {
                "field": "externalId",
                "code": "CONFLICT",
                "message": "externalId already used with other content (differs in subject)",
            }
        ]
    ] * (N - 1)
    assert await scalar(api, "SELECT count(*) FROM complaints") == 1
    assert await scalar(api, "SELECT count(*) FROM complaint_events") == 1


async def test_concurrent_survey_responses_with_one_external_id_store_one(api: Api) -> None:
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Rae Race")
    survey = await create_nps_survey(api, admin)
    submission = {
        "surveyId": survey["id"],
        "customerId": customer["id"],
        "channel": "WEB",
        "externalId": "R-race",
        "answers": [{"questionId": survey["questions"][0]["id"], "score": 9}],
    }
    bodies = await _race(api, partner, SUBMIT_RESPONSE, [{"input": submission}] * N)
    ids = {ok(b, "submitSurveyResponse")["response"]["id"] for b in bodies}
    assert len(ids) == 1
    assert await scalar(api, "SELECT count(*) FROM survey_responses") == 1
    assert await scalar(api, "SELECT count(*) FROM survey_answers") == 1
    assert await scalar(api, "SELECT latest_nps FROM customer_metrics") == 9
    responses = "SELECT responses FROM report_score_days UNION ALL SELECT responses FROM report_score_day_deltas"
    assert await scalar(api, f"SELECT sum(responses) FROM ({responses}) s") == 1  # the summary and its deltas


async def test_concurrent_answers_of_one_customer_without_external_id_store_one(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name="Rae Race")
    survey = await create_nps_survey(api, admin)
    question = survey["questions"][0]["id"]
    variables = [
        {
            "input": {
                "surveyId": survey["id"],
                "customerId": customer["id"],
                "channel": "WEB",
                "answers": [{"questionId": question, "score": n % 11}],
            }
        }
        for n in range(N)
    ]
    results = [payload(b, "submitSurveyResponse") for b in await _race(api, admin, SUBMIT_RESPONSE, variables)]
    assert len([r for r in results if r["response"]]) == 1
    losers = [r["userErrors"] for r in results if not r["response"]]
    assert losers == [
        [{"field": "surveyId", "code": "INVALID", "message": "this customer has answered this survey already"}]
    ] * (N - 1)
    assert await scalar(api, "SELECT count(*) FROM survey_responses") == 1


async def test_concurrent_purchase_batches_record_each_purchase_once(api: Api) -> None:
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Rae Race", externalRef="crm-race")
    batch = {
        "purchases": [
            {"customerExternalRef": "crm-race", "externalId": "o-1", "amount": "100.00"},
            {"customerId": customer["id"], "externalId": "o-2", "amount": "50.00"},
        ]
    }
    queued_before = await scalar(api, "SELECT count(*) FROM procrastinate_jobs")
    bodies = await _race(api, partner, RECORD_PURCHASES, [{"input": batch}] * N)
    results = [ok(b, "recordPurchases") for b in bodies]
    assert sorted(r["insertedCount"] for r in results) == [0] * (N - 1) + [2]  # one request inserted both
    assert len({tuple(p["id"] for p in r["purchases"]) for r in results}) == 1
    assert await scalar(api, "SELECT count(*) FROM purchases") == 2
    assert await scalar(api, "SELECT (order_count, lifetime_spend)::text FROM customer_metrics") == "(2,150.00)"
    # the churn re-score is queued by the request that inserted, not by the replays
    assert await scalar(api, "SELECT count(*) FROM procrastinate_jobs") - queued_before == 1


async def test_concurrent_customers_with_one_external_ref_store_one(api: Api) -> None:
    partner, _ = await api.partner_token()
    query = f"""mutation($input: CreateCustomerInput!) {{
      createCustomer(input: $input) {{ customer {{ id }} {USER_ERRORS} }} }}"""
    values = {"input": {"name": "Rae Race", "externalRef": "crm-once"}}
    results = [payload(b, "createCustomer") for b in await _race(api, partner, query, [values] * N)]
    assert len([r for r in results if r["customer"]]) == 1
    assert [r["userErrors"] for r in results if not r["customer"]] == [
        [
            {
                "field": "externalRef",
                "code": "CONFLICT",
                "message": "a customer with this external reference exists already",
            }
        ]
    ] * (N - 1)
    assert await scalar(api, "SELECT count(*) FROM customers") == 1
    assert await scalar(api, "SELECT count(*) FROM customer_metrics") == 1


async def test_concurrent_invitations_of_one_customer_send_one(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name="Rae Race")
    survey = await create_nps_survey(api, admin)
    query = f"""mutation($input: InviteToSurveyInput!) {{
      inviteToSurvey(input: $input) {{ invitations {{ id }} skipped {{ reason }} {USER_ERRORS} }} }}"""
    values = {"input": {"surveyId": survey["id"], "customerIds": [customer["id"]]}}
    results = [ok(b, "inviteToSurvey") for b in await _race(api, admin, query, [values] * N)]
    assert sum(len(r["invitations"]) for r in results) == 1
    # manual invitations are deduplicated by the per-customer throttle (any survey, any channel)
    assert sorted(s["reason"] for r in results for s in r["skipped"]) == ["throttled"] * (N - 1)
    assert await scalar(api, "SELECT count(*) FROM survey_invitations") == 1


async def test_concurrent_taxonomy_and_access_creates_have_one_winner(api: Api) -> None:
    admin = await api.user("alice", "admin")
    cases = {
        "addComplaintCategory": ('addComplaintCategory(code: "raced", label: "Raced")', "code", "CONFLICT"),
        "addRootCause": ('addRootCause(code: "raced", label: "Raced")', "code", "CONFLICT"),
        "createRole": ('createRole(name: "raced_role")', "role", "INVALID"),
    }
    for name, (call, field, code) in cases.items():
        bodies = await _race(api, admin, f"mutation {{ {call} {{ {USER_ERRORS} }} }}", [{}] * N)
        errors = [payload(b, name)["userErrors"] for b in bodies]
        assert errors.count([]) == 1, (name, errors)
        assert sorted((e[0]["field"], e[0]["code"]) for e in errors if e) == [(field, code)] * (N - 1), name
    bodies = await _race(api, admin, 'mutation { assignRole(user: "rae", role: "raced_role") { ok } }', [{}] * N)
    assert [b["data"]["assignRole"]["ok"] for b in bodies].count(True) == 1
    assert await scalar(api, "SELECT count(*) FROM roles WHERE name = 'raced_role'") == 1
    assert await scalar(api, "SELECT count(*) FROM casbin_rules WHERE v0 = 'user:rae'") == 1


async def test_a_reused_key_with_other_content_writes_nothing(api: Api) -> None:
    """The same key with other content is refused for every idempotent create, and nothing changes."""
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Rae Race")
    survey = await create_nps_survey(api, admin)
    question = survey["questions"][0]["id"]
    complaint = {
        "customerId": customer["id"],
        "subject": "Lid",
        "description": "Broken.",
        "category": "product_quality",
        "externalId": "K-1",
    }
    response = {
        "surveyId": survey["id"],
        "customerId": customer["id"],
        "channel": "WEB",
        "externalId": "K-1",
        "answers": [{"questionId": question, "score": 9}],
    }
    purchase = {"customerId": customer["id"], "externalId": "K-1", "amount": "10.00", "currency": "EUR"}
    ok(await api.gql(partner, OPEN_COMPLAINT, {"input": complaint}), "openComplaint")
    ok(await api.gql(partner, SUBMIT_RESPONSE, {"input": response}), "submitSurveyResponse")
    ok(await api.gql(partner, RECORD_PURCHASES, {"input": {"purchases": [purchase]}}), "recordPurchases")
    before = await snapshot(api)
    other = {
        "openComplaint": (OPEN_COMPLAINT, {"input": {**complaint, "description": "Broken twice."}}, "description"),
        "submitSurveyResponse": (
            SUBMIT_RESPONSE,
            {"input": {**response, "channel": "EMAIL", "answers": [{"questionId": question, "score": 3}]}},
            "channel, answers",
        ),
        "recordPurchases": (
            RECORD_PURCHASES,
            {"input": {"purchases": [{**purchase, "currency": "USD", "channel": "shop"}]}},
            "currency, channel",
        ),
    }
    for name, (query, variables, differing) in other.items():
        errors = payload(await api.gql(partner, query, variables), name)["userErrors"]
        assert [(e["code"], e["message"]) for e in errors] == [
            ("CONFLICT", f"externalId already used with other content (differs in {differing})")
        ], name
    assert await snapshot(api) == before
