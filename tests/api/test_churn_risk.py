"""Churn warnings over HTTP (issue 5): ``Customer.churnRisk`` lists the signals that fired with their
numbers, is recomputed after each event that changes its inputs (in the event's transaction for survey
answers, complaints and their breaches; by a job queued in the ingest's transaction for purchases),
shows money only to who may read spend, and costs one statement per page."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from infra import churn
from infra import sla as sla_sweeps
from infra.db import StatementCounter
from tests.api.helpers import (
    SUBMIT_RESPONSE,
    create_customer,
    create_nps_survey,
    error_codes,
    module_api,
    ok,
    open_complaint,
    raw_id,
    record_purchases,
)
from tests.conftest import Api

RISK = "query($id: ID!) { customer(id: $id) { churnRisk { level score signals computedAt modelVersion } } }"


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


async def risk(api: Api, token: str, customer: str) -> dict[str, Any]:
    body = await api.gql(token, RISK, {"id": customer})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["customer"]["churnRisk"]
    return result


async def run_churn_jobs(api: Api) -> int:
    """Work the re-scores the purchase batches queued, as the service's worker does, until none is left;
    returns how many ran."""
    async with api.services.engine.connect() as conn:
        before = await _refresh_jobs(conn, "succeeded")
    await api.services.jobs.run_worker_async(queues=[churn.REFRESH_QUEUE], wait=False, install_signal_handlers=False)
    async with api.services.engine.connect() as conn:
        assert await _refresh_jobs(conn, "todo") == 0
        return await _refresh_jobs(conn, "succeeded") - before


async def _refresh_jobs(conn: Any, status: str) -> int:
    sql = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = :task AND status = :status"
    return int((await conn.execute(text(sql), {"task": churn.REFRESH_TASK, "status": status})).scalar_one())


def ago(days: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat()


def by_code(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["code"]: s for s in r["signals"]}


async def test_signals_fire_with_their_numbers_and_follow_each_event(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Rita Rhythm"))["id"]
    # Bought every 30 days, 100 each, then nothing for 91 days.
    await record_purchases(
        api, admin, *[{"customerId": customer, "amount": "100.00", "purchasedAt": ago(d)} for d in (151, 121, 91)]
    )
    assert await run_churn_jobs(api) == 1  # one job per batch
    got = await risk(api, admin, customer)
    assert (got["level"], got["score"], got["modelVersion"]) == ("red", 50, 1)
    signals = by_code(got)
    assert list(signals) == ["silence", "spend_drop"]
    silence = signals["silence"]["values"]
    assert silence["rhythmDays"] == 30.0
    assert silence["ownRhythm"] is True
    assert 91 <= silence["daysSinceLastPurchase"] < 91.01
    assert 3.03 <= silence["ratio"] <= 3.04
    assert signals["spend_drop"]["values"] == {
        "dropPct": 100.0,
        "windowDays": 90,
        "recentSpend": 0.0,
        "priorSpend": 300.0,
    }

    # A purchase today: the silence is over once its job ran, the spend is still down 83 %.
    await record_purchases(api, admin, {"customerId": customer, "amount": "50.00"})
    assert (await risk(api, admin, customer))["level"] == "red"  # not re-scored inside the ingest
    assert await run_churn_jobs(api) == 1
    got = await risk(api, admin, customer)
    assert (got["level"], got["score"], list(by_code(got))) == ("green", 20, ["spend_drop"])
    assert by_code(got)["spend_drop"]["values"]["dropPct"] == 83.33

    # A detractor's answer.
    survey = await create_nps_survey(api, admin)
    ok(
        await api.gql(
            admin,
            SUBMIT_RESPONSE,
            {
                "input": {
                    "surveyId": survey["id"],
                    "customerId": customer,
                    "channel": "WEB",
                    "answers": [{"questionId": survey["questions"][0]["id"], "score": 2}],
                }
            },
        ),
        "submitSurveyResponse",
    )
    got = await risk(api, admin, customer)
    assert (got["level"], got["score"]) == ("yellow", 45)
    assert by_code(got)["detractor"] == {
        "code": "detractor",
        "weight": 25,
        "message": "latest answer is a detractor's: NPS 2",
        "values": {"latestNps": 2, "latestCsat": None},
    }

    # Two complaints; the first breaches its SLA (found by the sweep, which re-scores the customer).
    first = await open_complaint(api, admin, customer)
    await open_complaint(api, admin, customer)
    got = await risk(api, admin, customer)
    assert "repeated_complaints" in by_code(got)
    assert "breached_complaints" not in by_code(got)
    async with api.services.engine.begin() as conn:
        await conn.execute(
            text("UPDATE complaints SET first_response_due_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": raw_id(first["id"])},
        )
        report = await sla_sweeps.sweep(conn, auto_close_days=7, critical_fraction=0.5)
    assert raw_id(customer) in report.customers
    got = await risk(api, admin, customer)
    assert by_code(got)["breached_complaints"]["values"] == {"breachedComplaints": 1, "windowDays": 90}
    assert (got["level"], got["score"]) == ("red", 20 + 25 + 15 + 15)


async def test_the_rescore_job_is_queued_with_the_purchases_or_not_at_all(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Quinn Queue"))["id"]
    await run_churn_jobs(api)
    # A batch refused as a whole (one bad item): no purchase, no job.
    body = await api.gql(
        admin,
        "mutation($input: RecordPurchasesInput!) { recordPurchases(input: $input) "
        "{ insertedCount userErrors { field code } } }",
        {
            "input": {
                "purchases": [{"customerId": customer, "amount": "10.00"}, {"customerId": customer, "amount": "-1"}]
            }
        },
    )
    assert body["data"]["recordPurchases"]["userErrors"], body
    async with api.services.engine.connect() as conn:
        assert await _refresh_jobs(conn, "todo") == 0
        assert (
            await conn.execute(text("SELECT count(*) FROM purchases WHERE customer_id = :c"), {"c": raw_id(customer)})
        ).scalar_one() == 0
    # A replay of purchases recorded before (same external ids): nothing new, no job.
    item = {"customerId": customer, "amount": "10.00", "externalId": "Q-1", "purchasedAt": ago(40)}
    await record_purchases(api, admin, item, {**item, "externalId": "Q-2", "purchasedAt": ago(20)})
    async with api.services.engine.connect() as conn:
        assert await _refresh_jobs(conn, "todo") == 1
        job_args = (
            await conn.execute(
                text("SELECT args FROM procrastinate_jobs WHERE task_name = :t AND status = 'todo'"),
                {"t": churn.REFRESH_TASK},
            )
        ).scalar_one()
        assert job_args == {"customer_ids": [str(raw_id(customer))]}  # each customer once per batch
    assert (await record_purchases(api, admin, item))["insertedCount"] == 0
    async with api.services.engine.connect() as conn:
        assert await _refresh_jobs(conn, "todo") == 1
    assert await run_churn_jobs(api) == 1
    async with api.services.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT level, signals FROM churn_scores WHERE customer_id = :c"), {"c": raw_id(customer)}
            )
        ).one()
    assert row.level in ("green", "yellow", "red")


async def test_a_recent_downgrade_is_a_signal(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Dan Downgraded"))["id"]
    async with api.services.engine.begin() as conn:  # the history row the tier engine writes on a downgrade
        await conn.execute(
            text(
                "INSERT INTO tier_changes (customer_id, from_tier, to_tier, change_type, reason, changed_at)"
                " VALUES (:id, 'gold', 'silver', 'downgrade', 'retain rule of gold fails', now() - interval '10 days')"
            ),
            {"id": raw_id(customer)},
        )
        await churn.refresh(conn, [raw_id(customer)])
    signals = by_code(await risk(api, admin, customer))
    assert signals["tier_downgrade"]["values"] == {"daysAgo": 10.0, "change": "gold→silver"}
    assert signals["tier_downgrade"]["message"] == "tier downgrade gold→silver 10 days ago"


async def test_money_only_for_who_may_read_spend_and_partners_see_no_risk(api: Api) -> None:
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token()
    customer = (await create_customer(api, partner, name="Mona Money", select="id"))["id"]
    await record_purchases(
        api, admin, *[{"customerId": customer, "amount": "100.00", "purchasedAt": ago(d)} for d in (170, 150, 130)]
    )
    await run_churn_jobs(api)
    full = by_code(await risk(api, admin, customer))["spend_drop"]["values"]
    assert full["priorSpend"] == 300.0
    for who, role in (("bob", "support_agent"), ("carol", "analyst"), ("dave", "marketing")):
        token = await api.user(who, role)
        values = by_code(await risk(api, token, customer))["spend_drop"]["values"]
        if role == "support_agent":  # no spend figures for support agents: the share only
            assert values == {"dropPct": 100.0, "windowDays": 90}
        else:
            assert values["priorSpend"] == 300.0
    body = await api.gql(partner, RISK, {"id": customer})
    assert error_codes(body) == ["FORBIDDEN_FIELD"]


async def test_churn_risk_of_a_page_costs_one_statement(api: Api) -> None:
    admin = await api.user("alice", "admin")
    for n in range(12):
        await create_customer(api, admin, name=f"Paged {n}")
    async with api.services.engine.begin() as conn:
        await churn.recompute_all(conn)
    query = "query($n: Int!) { customers(first: $n) { edges { node { id churnRisk { level } } } } }"
    counts = []
    for n in (3, 12):
        with StatementCounter(api.services.engine) as counter:
            body = await api.gql(admin, query, {"n": n})
        assert "errors" not in body
        assert all(e["node"]["churnRisk"]["level"] for e in body["data"]["customers"]["edges"])
        counts.append(len([s for s in counter.statements if "churn_scores" in s]))
    assert counts == [1, 1]
