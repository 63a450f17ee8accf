"""Writes over HTTP: idempotent partner writes, metrics and tiers kept current by purchases, the complaint
lifecycle with its events and SLA clock, surveys and their responses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tests.api.helpers import (
    CREATE_SURVEY,
    OPEN_COMPLAINT,
    SUBMIT_RESPONSE,
    TRANSITION_COMPLAINT,
    USER_ERRORS,
    count,
    create_customer,
    ok,
    open_complaint,
    payload,
    raw_id,
    record_purchases,
    scalar,
)
from tests.conftest import Api

PARTNER_PURCHASES = f"""
mutation($input: RecordPurchasesInput!) {{
  recordPurchases(input: $input) {{ insertedCount purchases {{ id }} {USER_ERRORS} }}
}}"""
PURCHASES_WITH_CUSTOMER = f"""
mutation($input: RecordPurchasesInput!) {{
  recordPurchases(input: $input) {{
    insertedCount
    purchases {{ id amount customer {{ id tier {{ code }} metrics {{ orders12m spend12m lifetimeSpend orderCount }} }} }}
    {USER_ERRORS}
  }}
}}"""
CUSTOMER_TIER = """
query($id: ID!) {
  customer(id: $id) {
    tier { code name rank }
    metrics { orders12m spend12m lifetimeSpend orderCount lastPurchaseAt }
    tierHistory { edges { node { fromTier toTier changeType reason actor } } }
  }
}"""


def ago(**delta: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).isoformat()


# ---------------------------------------------------------------- purchases


async def test_record_purchases_is_idempotent_on_the_partners_external_ids(api: Api) -> None:
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Pat", externalRef="crm-7")
    batch = {
        "purchases": [
            {"customerId": customer["id"], "externalId": "ord-1", "amount": "100.00", "purchasedAt": ago(days=2)},
            {"customerExternalRef": "crm-7", "externalId": "ord-2", "amount": "150.50", "purchasedAt": ago(days=1)},
        ]
    }
    first = ok(await api.gql(partner, PARTNER_PURCHASES, {"input": batch}), "recordPurchases")
    assert first["insertedCount"] == 2
    ids = [p["id"] for p in first["purchases"]]
    assert len(set(ids)) == 2

    again = ok(await api.gql(partner, PARTNER_PURCHASES, {"input": batch}), "recordPurchases")
    assert again["insertedCount"] == 0
    assert [p["id"] for p in again["purchases"]] == ids
    assert await count(api, "purchases") == 2

    # A repeated external id with other values is a CONFLICT (issue 18; it used to return the stored
    # purchase silently), and the batch is refused as a whole: ord-3 is not recorded either.
    changed = {
        "purchases": [
            {**batch["purchases"][1], "amount": "999.99"},
            {"customerId": customer["id"], "externalId": "ord-3", "amount": "49.50"},
        ]
    }
    refused = payload(await api.gql(partner, PARTNER_PURCHASES, {"input": changed}), "recordPurchases")
    assert refused["userErrors"] == [
        {
            "field": "purchases[0].externalId",
            "code": "CONFLICT",
            "message": "externalId already used with other content (differs in amount)",
        }
    ]
    assert (refused["insertedCount"], refused["purchases"]) == (0, [])
    assert await count(api, "purchases") == 2
    assert await scalar(api, "SELECT amount::text FROM purchases WHERE external_id = 'ord-2'") == "150.50"
    third = ok(
        await api.gql(partner, PARTNER_PURCHASES, {"input": {"purchases": changed["purchases"][1:]}}), "recordPurchases"
    )
    assert third["insertedCount"] == 1
    assert await count(api, "purchases") == 3

    metrics = (await api.gql(admin, CUSTOMER_TIER, {"id": customer["id"]}))["data"]["customer"]["metrics"]
    assert (metrics["orders12m"], Decimal(metrics["spend12m"]), Decimal(metrics["lifetimeSpend"])) == (
        3,
        Decimal("300.00"),
        Decimal("300.00"),
    )


async def test_the_same_external_id_twice_in_one_batch_has_one_effect(api: Api) -> None:
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Pat")
    item = {"customerId": customer["id"], "externalId": "dup-1", "amount": "10.00"}
    result = ok(await api.gql(partner, PARTNER_PURCHASES, {"input": {"purchases": [item, item]}}), "recordPurchases")
    assert result["insertedCount"] == 1
    assert result["purchases"][0]["id"] == result["purchases"][1]["id"]
    assert await count(api, "purchases") == 1


async def test_external_ids_are_scoped_to_the_partner(api: Api) -> None:
    north, _ = await api.partner_token("Northwind Shop")
    south, _ = await api.partner_token("Southwind Traders")
    a = await create_customer(api, north, name="North Customer")
    b = await create_customer(api, south, name="South Customer")
    one = ok(
        await api.gql(
            north,
            PARTNER_PURCHASES,
            {"input": {"purchases": [{"customerId": a["id"], "externalId": "ord-1", "amount": "10.00"}]}},
        ),
        "recordPurchases",
    )
    two = ok(
        await api.gql(
            south,
            PARTNER_PURCHASES,
            {"input": {"purchases": [{"customerId": b["id"], "externalId": "ord-1", "amount": "20.00"}]}},
        ),
        "recordPurchases",
    )
    assert (one["insertedCount"], two["insertedCount"]) == (1, 1)
    assert one["purchases"][0]["id"] != two["purchases"][0]["id"]
    assert await count(api, "purchases") == 2


async def test_purchases_without_external_id_are_each_recorded(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name="Ann")
    item = {"customerId": customer["id"], "amount": "5.00"}
    first = await record_purchases(api, admin, item, item)
    second = await record_purchases(api, admin, item)
    assert (first["insertedCount"], second["insertedCount"]) == (2, 1)
    assert len({p["id"] for p in first["purchases"] + second["purchases"]}) == 3
    assert [p["amount"] for p in first["purchases"]] == ["5.00", "5.00"]
    assert first["purchases"][0]["currency"] == "EUR"


async def test_purchases_update_metrics_and_move_the_tier_in_the_same_request(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name="Ann")
    cid = customer["id"]

    first = ok(
        await api.gql(
            admin,
            PURCHASES_WITH_CUSTOMER,
            {
                "input": {
                    "purchases": [
                        {"customerId": cid, "externalId": "a-1", "amount": "300.00", "purchasedAt": ago(days=10)},
                        {"customerId": cid, "externalId": "a-0", "amount": "1000.00", "purchasedAt": ago(days=400)},
                    ]
                }
            },
        ),
        "recordPurchases",
    )
    seen = first["purchases"][0]["customer"]
    assert seen["tier"] == {"code": "bronze"}
    assert seen["metrics"] == {"orders12m": 1, "spend12m": "300.00", "lifetimeSpend": "1300.00", "orderCount": 2}

    # 300 + 199.99 stays below the silver threshold of 500 in 12 months (the old purchase does not count)…
    below = ok(
        await api.gql(
            admin,
            PURCHASES_WITH_CUSTOMER,
            {
                "input": {
                    "purchases": [
                        {"customerId": cid, "externalId": "a-2", "amount": "199.99", "purchasedAt": ago(days=5)}
                    ]
                }
            },
        ),
        "recordPurchases",
    )
    assert below["purchases"][0]["customer"]["tier"] == {"code": "bronze"}
    assert below["purchases"][0]["customer"]["metrics"]["spend12m"] == "499.99"

    # …and one more cent crosses it, within the same request.
    a3 = {"customerId": cid, "externalId": "a-3", "amount": "0.01", "purchasedAt": ago(hours=1)}
    crossed = ok(
        await api.gql(
            admin,
            PURCHASES_WITH_CUSTOMER,
            {"input": {"purchases": [a3]}},
        ),
        "recordPurchases",
    )
    seen = crossed["purchases"][0]["customer"]
    assert seen["tier"] == {"code": "silver"}
    assert seen["metrics"] == {"orders12m": 3, "spend12m": "500.00", "lifetimeSpend": "1500.00", "orderCount": 4}

    # Replaying a batch (the same body) changes nothing: no second upgrade, same metrics.
    replay = ok(
        await api.gql(
            admin,
            PURCHASES_WITH_CUSTOMER,
            {"input": {"purchases": [a3]}},
        ),
        "recordPurchases",
    )
    assert replay["insertedCount"] == 0
    assert replay["purchases"][0]["customer"]["metrics"]["spend12m"] == "500.00"

    got = (await api.gql(admin, CUSTOMER_TIER, {"id": cid}))["data"]["customer"]
    assert got["tier"] == {"code": "silver", "name": "Silver", "rank": 1}
    history = [e["node"] for e in got["tierHistory"]["edges"]]
    assert [(h["fromTier"], h["toTier"], h["changeType"]) for h in history] == [
        ("bronze", "silver", "UPGRADE"),
        (None, "bronze", "INITIAL"),
    ]
    assert history[0]["actor"] == "user:alice"
    assert "silver" in history[0]["reason"]


async def test_orders_alone_can_reach_silver(api: Api) -> None:
    admin = await api.user("alice", "admin")
    cid = (await create_customer(api, admin, name="Ann"))["id"]
    await record_purchases(api, admin, *[{"customerId": cid, "amount": "1.00"} for _ in range(5)])
    tier = (await api.gql(admin, CUSTOMER_TIER, {"id": cid}))["data"]["customer"]["tier"]["code"]
    assert tier == "bronze"
    await record_purchases(api, admin, {"customerId": cid, "amount": "1.00"})
    tier = (await api.gql(admin, CUSTOMER_TIER, {"id": cid}))["data"]["customer"]["tier"]["code"]
    assert tier == "silver"


# ---------------------------------------------------------------- complaints


async def test_open_complaint_is_idempotent_on_the_partners_external_id(api: Api) -> None:
    north, _ = await api.partner_token("Northwind Shop")
    south, _ = await api.partner_token("Southwind Traders")
    a = await create_customer(api, north, name="North Customer")
    b = await create_customer(api, south, name="South Customer")
    values = {
        "customerId": a["id"],
        "subject": "Broken lid",
        "description": "Arrived broken.",
        "category": "product_quality",
        "severity": "HIGH",
        "externalId": "T-1",
    }
    first = ok(await api.gql(north, OPEN_COMPLAINT, {"input": values}), "openComplaint")["complaint"]
    # the same content again (after the same normalisation) is a replay: the stored complaint
    again = ok(
        await api.gql(north, OPEN_COMPLAINT, {"input": {**values, "subject": "  Broken   lid "}}), "openComplaint"
    )["complaint"]
    assert again == first
    assert first["status"] == "NEW"
    # other content under the same external id is a CONFLICT (issue 18; it used to return the stored one)
    other_content = payload(
        await api.gql(north, OPEN_COMPLAINT, {"input": {**values, "subject": "Other subject", "severity": "LOW"}}),
        "openComplaint",
    )
    assert other_content == {
        "complaint": None,
        "userErrors": [
            {
                "field": "externalId",
                "code": "CONFLICT",
                "message": "externalId already used with other content (differs in subject, severity)",
            }
        ],
    }
    assert await count(api, "complaints") == 1
    assert await count(api, "complaint_events") == 1
    assert await scalar(api, "SELECT subject FROM complaints") == "Broken lid"

    other = ok(await api.gql(south, OPEN_COMPLAINT, {"input": {**values, "customerId": b["id"]}}), "openComplaint")[
        "complaint"
    ]
    assert other["id"] != first["id"]
    assert await count(api, "complaints") == 2

    without = {k: v for k, v in values.items() if k != "externalId"}
    x = ok(await api.gql(north, OPEN_COMPLAINT, {"input": without}), "openComplaint")["complaint"]
    y = ok(await api.gql(north, OPEN_COMPLAINT, {"input": without}), "openComplaint")["complaint"]
    assert x["id"] != y["id"]
    assert await count(api, "complaints") == 4


COMPLAINT = """
query($id: ID!) {
  complaint(id: $id) {
    status version reopenCount assignee resolutionCode rootCause { code } category { code label }
    firstRespondedAt resolvedAt closedAt severity channel subject description customer { id }
    events { fromStatus toStatus actor note at }
  }
}"""


async def test_complaint_lifecycle_records_every_event_in_order(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name="Ann")
    opened = await open_complaint(api, admin, customer["id"], channel="EMAIL")
    cid = opened["id"]
    resolve = {"to": "RESOLVED", "resolutionCode": "refund", "rootCauseCode": "partner"}
    steps: list[dict[str, Any]] = [
        {"to": "OPEN", "assignee": "bob", "note": "looking into it"},
        {"to": "PENDING_CUSTOMER", "note": "asked for the order number"},
        {"to": "OPEN"},
        {**resolve, "note": "refunded"},
        {"to": "OPEN", "note": "customer says not refunded"},
        {"to": "ON_HOLD"},
        {**resolve, "resolutionCode": "refund_again"},
        {"to": "CLOSED"},
    ]
    first_response = None
    for version, step in enumerate(steps, start=1):
        result = ok(
            await api.gql(admin, TRANSITION_COMPLAINT, {"input": {"id": cid, "expectedVersion": version, **step}}),
            "transitionComplaint",
        )
        c = result["complaint"]
        assert (c["status"], c["version"]) == (step["to"], version + 1)
        first_response = first_response or c["firstRespondedAt"]
        assert c["firstRespondedAt"] == first_response  # set once, by the first transition out of new
        if version == 5:  # the reopen
            assert (c["reopenCount"], c["resolvedAt"]) == (1, None)

    got = (await api.gql(admin, COMPLAINT, {"id": cid}))["data"]["complaint"]
    assert got["status"] == "CLOSED"
    assert got["reopenCount"] == 1
    assert got["assignee"] == "bob"
    assert (got["resolutionCode"], got["rootCause"]) == ("refund_again", {"code": "partner"})
    assert got["category"] == {"code": "delivery", "label": "Delivery and shipping"}
    assert (got["severity"], got["channel"]) == ("MEDIUM", "EMAIL")  # severity defaulted
    assert got["customer"] == {"id": customer["id"]}
    assert got["firstRespondedAt"] <= got["resolvedAt"] <= got["closedAt"]
    events = got["events"]
    assert [(e["fromStatus"], e["toStatus"]) for e in events] == [
        (None, "NEW"),
        ("NEW", "OPEN"),
        ("OPEN", "PENDING_CUSTOMER"),
        ("PENDING_CUSTOMER", "OPEN"),
        ("OPEN", "RESOLVED"),
        ("RESOLVED", "OPEN"),
        ("OPEN", "ON_HOLD"),
        ("ON_HOLD", "RESOLVED"),
        ("RESOLVED", "CLOSED"),
    ]
    assert [e["note"] for e in events][:2] == [None, "looking into it"]
    assert {e["actor"] for e in events} == {"user:alice"}
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)


async def test_sla_deadlines_come_from_the_tier_and_severity(api: Api) -> None:
    admin = await api.user("alice", "admin")
    bronze = await create_customer(api, admin, name="Bronze")
    platinum = await create_customer(api, admin, name="Platinum")
    untiered = await create_customer(api, admin, name="No Purchases Yet")
    await record_purchases(
        api, admin, {"customerId": bronze["id"], "amount": "10.00"}, {"customerId": platinum["id"], "amount": "9500.00"}
    )  # platinum score 95
    for who, tier in ((bronze, "bronze"), (platinum, "platinum")):
        got = await api.gql(admin, CUSTOMER_TIER, {"id": who["id"]})
        assert got["data"]["customer"]["tier"]["code"] == tier

    targets = {}
    async with api.services.engine.connect() as conn:
        from sqlalchemy import text

        rows = (
            await conn.execute(
                text(
                    "SELECT t.tier_code, t.severity, t.first_response_minutes, t.resolution_minutes FROM sla_targets t "
                    "JOIN sla_policies p ON p.id = t.policy_id WHERE p.status = 'active'"
                )
            )
        ).all()
        targets = {(r[0], r[1]): (r[2], r[3]) for r in rows}

    def minutes(c: dict[str, Any], field: str) -> float:
        return (dt.datetime.fromisoformat(c[field]) - dt.datetime.fromisoformat(c["openedAt"])).total_seconds() / 60

    for severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
        got: dict[str, tuple[float, float]] = {}
        for who, tier in ((bronze, "bronze"), (platinum, "platinum"), (untiered, "bronze")):
            c = await open_complaint(api, admin, who["id"], severity=severity)
            assert c["tierAtOpen"] == tier
            assert c["firstResponseDueAt"] is not None
            assert c["resolutionDueAt"] is not None
            due = (minutes(c, "firstResponseDueAt"), minutes(c, "resolutionDueAt"))
            assert due == targets[(tier, severity.lower())], (tier, severity)
            got[who["name"]] = due
        assert got["Bronze"][0] >= got["Platinum"][0], severity
        assert got["Bronze"][1] > got["Platinum"][1], severity
        assert got["No Purchases Yet"] == got["Bronze"]
    high = targets[("bronze", "high")], targets[("platinum", "high")]
    assert high[0][0] > high[1][0]
    assert high[0][1] > high[1][1]


async def test_waiting_on_the_customer_pushes_the_resolution_deadline(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name="Ann")
    opened = await open_complaint(api, admin, customer["id"], severity="HIGH")
    cid = raw_id(opened["id"])
    for version, to in enumerate(("OPEN", "PENDING_CUSTOMER"), start=1):
        ok(
            await api.gql(
                admin,
                TRANSITION_COMPLAINT,
                {"input": {"id": opened["id"], "expectedVersion": version, "to": to, "assignee": "bob"}},
            ),
            "transitionComplaint",
        )
    assert await scalar(api, "SELECT paused_since IS NOT NULL FROM complaints WHERE id = :id", id=cid)
    # Pretend the customer took an hour to answer.
    async with api.services.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(
            text("UPDATE complaints SET paused_since = paused_since - interval '1 hour' WHERE id = :id"), {"id": cid}
        )
    ok(
        await api.gql(admin, TRANSITION_COMPLAINT, {"input": {"id": opened["id"], "expectedVersion": 3, "to": "OPEN"}}),
        "transitionComplaint",
    )
    paused, shifted = await scalar(
        api,
        "SELECT json_build_array(paused_seconds, extract(epoch from resolution_due_at)) FROM complaints WHERE id = :id",
        id=cid,
    )
    before = dt.datetime.fromisoformat(opened["resolutionDueAt"]).timestamp()
    assert 3600 <= paused < 3700
    assert shifted - before == paused or abs(shifted - before - paused) < 1


# ---------------------------------------------------------------- surveys

SURVEY = {
    "title": "  After your complaint  ",
    "channels": ["EMAIL", "WEB", "EMAIL"],
    "description": "Two minutes",
    "questions": [
        {"kind": "NPS", "dimension": " Loyalty ", "prompt": "Recommend us?"},
        {"kind": "SINGLE_CHOICE", "dimension": "speed", "prompt": "How fast?", "options": ["fast", " slow ", ""]},
        {"kind": "TEXT", "dimension": "comment", "prompt": "Anything else?", "required": False},
    ],
}
READ_SURVEY = """
query($id: ID!) {
  survey(id: $id) { title description status trigger channels perComplaint
                    questions { id position kind dimension prompt options required } }
}"""


async def test_create_survey_stores_it_normalised(api: Api) -> None:
    admin = await api.user("alice", "admin")
    created = ok(await api.gql(admin, CREATE_SURVEY, {"input": SURVEY}), "createSurvey")["survey"]
    got = (await api.gql(admin, READ_SURVEY, {"id": created["id"]}))["data"]["survey"]
    questions = got.pop("questions")
    assert got == {
        "title": "After your complaint",
        "description": "Two minutes",
        "status": "ACTIVE",
        "trigger": "MANUAL",
        "channels": ["EMAIL", "WEB"],
        "perComplaint": False,
    }
    assert [(q["position"], q["kind"], q["dimension"], q["options"], q["required"]) for q in questions] == [
        (0, "NPS", "loyalty", [], True),
        (1, "SINGLE_CHOICE", "speed", ["fast", "slow"], True),
        (2, "TEXT", "comment", [], False),
    ]
    assert [q["id"] for q in questions] == [q["id"] for q in created["questions"]]
    listed = await api.gql(admin, "{ surveys(first: 5) { totalCount edges { node { id } } } }")
    assert listed["data"]["surveys"]["totalCount"] == 1


async def test_submit_survey_response_is_idempotent_on_the_partners_external_id(api: Api) -> None:
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Pat")
    ok(
        await api.gql(
            partner, PARTNER_PURCHASES, {"input": {"purchases": [{"customerId": customer["id"], "amount": "20.00"}]}}
        ),
        "recordPurchases",
    )
    survey = ok(await api.gql(admin, CREATE_SURVEY, {"input": SURVEY}), "createSurvey")["survey"]
    nps, choice, _text = (q["id"] for q in survey["questions"])
    submission = {
        "surveyId": survey["id"],
        "customerId": customer["id"],
        "channel": "WEB",
        "externalId": "R-1",
        "answers": [{"questionId": nps, "score": 9}, {"questionId": choice, "choices": ["slow"]}],
    }
    first = ok(await api.gql(partner, SUBMIT_RESPONSE, {"input": submission}), "submitSurveyResponse")
    # the same answers again, in another order, are a replay: the stored response
    replay = {**submission, "answers": submission["answers"][::-1]}
    again = ok(await api.gql(partner, SUBMIT_RESPONSE, {"input": replay}), "submitSurveyResponse")
    assert again["response"]["id"] == first["response"]["id"]
    # other answers under the same external id are a CONFLICT (issue 18: they used to return the old response)
    other = payload(
        await api.gql(
            partner,
            SUBMIT_RESPONSE,
            {
                "input": {
                    **submission,
                    "answers": [{"questionId": nps, "score": 0}, {"questionId": choice, "choices": ["fast"]}],
                }
            },
        ),
        "submitSurveyResponse",
    )
    assert other == {
        "response": None,
        "userErrors": [
            {
                "field": "externalId",
                "code": "CONFLICT",
                "message": "externalId already used with other content (differs in answers)",
            }
        ],
    }
    assert await count(api, "survey_responses") == 1
    assert await count(api, "survey_answers") == 2

    got = await api.gql(
        admin,
        """query($id: ID!) { node(id: $id) { ... on SurveyResponse {
        externalId channel tierAtResponse customer { id } survey { id }
        answers { score choices text question { kind } } } } }""",
        {"id": first["response"]["id"]},
    )
    assert got["data"]["node"] == {
        "externalId": "R-1",
        "channel": "WEB",
        "tierAtResponse": "bronze",
        "customer": {"id": customer["id"]},
        "survey": {"id": survey["id"]},
        "answers": [
            {"score": 9, "choices": None, "text": None, "question": {"kind": "NPS"}},
            {"score": None, "choices": ["slow"], "text": None, "question": {"kind": "SINGLE_CHOICE"}},
        ],
    }


async def test_a_per_complaint_survey_is_answered_once_per_complaint(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = await create_customer(api, admin, name="Ann")
    k1 = await open_complaint(api, admin, customer["id"])
    k2 = await open_complaint(api, admin, customer["id"])
    survey = ok(
        await api.gql(
            admin,
            CREATE_SURVEY,
            {
                "input": {
                    "title": "CSAT",
                    "channels": ["EMAIL"],
                    "perComplaint": True,
                    "trigger": "COMPLAINT_RESOLVED",
                    "questions": [{"kind": "CSAT", "dimension": "satisfaction", "prompt": "Happy?"}],
                }
            },
        ),
        "createSurvey",
    )["survey"]
    q = survey["questions"][0]["id"]

    def answer(complaint: dict[str, Any] | None, score: int) -> dict[str, Any]:
        extra = {"complaintId": complaint["id"]} if complaint else {}
        return {
            "input": {
                "surveyId": survey["id"],
                "customerId": customer["id"],
                "channel": "EMAIL",
                "answers": [{"questionId": q, "score": score}],
                **extra,
            }
        }

    missing = await api.gql(admin, SUBMIT_RESPONSE, answer(None, 4))
    assert [e["field"] for e in missing["data"]["submitSurveyResponse"]["userErrors"]] == ["complaintId"]
    r1 = ok(await api.gql(admin, SUBMIT_RESPONSE, answer(k1, 5)), "submitSurveyResponse")["response"]["id"]
    r2 = ok(await api.gql(admin, SUBMIT_RESPONSE, answer(k2, 2)), "submitSurveyResponse")["response"]["id"]
    assert r1 != r2
    twice = await api.gql(admin, SUBMIT_RESPONSE, answer(k1, 1))
    assert [e["code"] for e in twice["data"]["submitSurveyResponse"]["userErrors"]] == ["INVALID"]
    assert await count(api, "survey_responses") == 2
