"""The after-change step (infra/after_change.py): every change of a customer's facts, made through the API,
runs metrics -> re-tier -> churn exactly once, in the use-case's transaction; a failure after it rolls the
metrics and the tier back with the change itself. Counted on the SQL actually sent to PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from api.usecases import complaints as complaint_usecases
from api.usecases import customers as usecases
from api.usecases import privacy
from api.usecases import surveys as survey_usecases
from infra import after_change as after_change_module
from infra.db import StatementCounter
from tests.api.helpers import (
    SUBMIT_RESPONSE,
    TRANSITION_COMPLAINT,
    create_customer,
    create_nps_survey,
    ok,
    open_complaint,
    raw_id,
    record_purchases,
)
from tests.conftest import Api

MERGE = """mutation($s: ID!, $d: ID!) { mergeCustomers(survivorId: $s, duplicateId: $d) {
  survivor { id } userErrors { field code message } } }"""
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { erasedId userErrors { field code message } } }"

# One statement per step, recognisable in the SQL text.
STEPS = {
    "metrics": "INSERT INTO customer_metrics",
    "retier": "WITH d AS MATERIALIZED",
    "churn now": "INSERT INTO churn_scores",
    "churn job": "procrastinate_defer_jobs",
}


async def _steps(api: Api, write: Callable[[], Awaitable[Any]]) -> dict[str, int]:
    with StatementCounter(api.services.engine) as counter:
        await write()
    return {name: sum(marker in s for s in counter.statements) for name, marker in STEPS.items()}


ONCE_NOW = {"metrics": 1, "retier": 1, "churn now": 1, "churn job": 0}
ONCE_DEFERRED = {"metrics": 1, "retier": 1, "churn now": 0, "churn job": 1}
NEVER = {"metrics": 0, "retier": 0, "churn now": 0, "churn job": 0}


async def _transition(api: Api, token: str, complaint: dict[str, Any], to: str, **extra: Any) -> dict[str, Any]:
    body = await api.gql(
        token,
        TRANSITION_COMPLAINT,
        {"input": {"id": complaint["id"], "expectedVersion": complaint["version"], "to": to, **extra}},
    )
    result: dict[str, Any] = ok(body, "transitionComplaint")["complaint"]
    return result


async def test_each_kind_of_change_runs_the_step_exactly_once(api: Api) -> None:
    admin = await api.user("after-change-admin", "admin")
    customer = await create_customer(api, admin, name="Facts Changing")
    cid = customer["id"]

    # a purchase batch (several items, two customers): once for the batch, churn queued as a job
    other = await create_customer(api, admin, name="Facts Other")
    items = [
        {"customerId": c, "amount": "10.00", "externalId": f"ac-{n}"} for n, c in enumerate([cid, other["id"]] * 3)
    ]
    assert await _steps(api, lambda: record_purchases(api, admin, *items)) == ONCE_DEFERRED
    # a replayed batch changes no fact: no step
    assert await _steps(api, lambda: record_purchases(api, admin, *items)) == NEVER

    complaint: dict[str, Any] = {}

    async def opened() -> None:
        complaint.update(await open_complaint(api, admin, cid))

    assert await _steps(api, opened) == ONCE_NOW
    # answered, then waiting on the customer: no metric or churn input moves
    for to in ("OPEN", "PENDING_CUSTOMER", "OPEN"):

        async def moved(to: str = to) -> None:
            complaint.update(await _transition(api, admin, complaint, to, assignee="agent"))

        assert await _steps(api, moved) == NEVER, to

    async def resolved() -> None:
        complaint.update(
            await _transition(api, admin, complaint, "RESOLVED", resolutionCode="refund", rootCauseCode="process")
        )

    assert await _steps(api, resolved) == ONCE_NOW  # the open-complaint count moves

    async def reopened() -> None:
        complaint.update(await _transition(api, admin, complaint, "OPEN"))

    assert await _steps(api, reopened) == ONCE_NOW

    survey = await create_nps_survey(api, admin)
    answer = {
        "input": {
            "surveyId": survey["id"],
            "customerId": cid,
            "channel": "WEB",
            "answers": [{"questionId": survey["questions"][0]["id"], "score": 9}],
        }
    }
    assert await _steps(api, lambda: api.gql(admin, SUBMIT_RESPONSE, answer)) == ONCE_NOW

    twin = await create_customer(api, admin, name="Facts Twin")
    merged = await _steps(api, lambda: api.gql(admin, MERGE, {"s": cid, "d": twin["id"]}))
    assert merged == ONCE_NOW
    assert await _steps(api, lambda: api.gql(admin, ERASE, {"id": other["id"]})) == ONCE_NOW


async def _state(api: Api, customer_id: Any) -> tuple[Any, ...]:
    async with api.services.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT c.tier_code, m.order_count, m.spend_12m, m.open_complaints,"
                    " (SELECT count(*) FROM tier_changes t WHERE t.customer_id = c.id),"
                    " (SELECT count(*) FROM purchases p WHERE p.customer_id = c.id),"
                    " (SELECT count(*) FROM complaints k WHERE k.customer_id = c.id)"
                    " FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id WHERE c.id = :id"
                ),
                {"id": customer_id},
            )
        ).one()
    return tuple(row)


@pytest.mark.parametrize("module", [usecases, complaint_usecases, survey_usecases, privacy])
async def test_only_use_cases_call_the_step(module: Any) -> None:
    """The step is the one imported from infra.after_change (the fault test below replaces it there)."""
    assert module.after_change is after_change_module.after_change


async def test_a_failure_after_the_step_rolls_back_metrics_and_tier_too(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.user("after-change-faults", "admin")
    customer = await create_customer(api, admin, name="Rolled Back")
    cid = raw_id(customer["id"])
    before = await _state(api, cid)
    assert before[:2] == ("bronze", 0), before  # placed in the base tier at creation

    real = after_change_module.after_change
    ran: list[tuple[Any, ...]] = []

    async def then_fail(conn: Any, ids: Any, **kw: Any) -> Any:
        await real(conn, ids, **kw)
        # inside the transaction the step did its work: gold-worthy spend, metrics and tier moved
        row = (
            await conn.execute(
                text(
                    "SELECT c.tier_code, m.order_count FROM customers c JOIN customer_metrics m "
                    "ON m.customer_id = c.id WHERE c.id = :id"
                ),
                {"id": cid},
            )
        ).one()
        ran.append(tuple(row))
        raise RuntimeError("a failure after the after-change step")

    for module in (usecases, complaint_usecases):  # purchases are the customers' use-case, complaints their own
        monkeypatch.setattr(module, "after_change", then_fail)
    big = [{"customerId": customer["id"], "amount": "900.00", "externalId": f"rb-{n}"} for n in range(8)]
    body = await api.gql(
        admin,
        "mutation($i: RecordPurchasesInput!) { recordPurchases(input: $i) { insertedCount } }",
        {"i": {"purchases": big}},
    )
    assert body.get("errors"), body
    assert len(ran) == 1, ran
    assert ran[0][0] != "bronze", ran  # the step had moved the tier...
    assert ran[0][1] == 8, ran  # ... and the metrics
    assert await _state(api, cid) == before  # ... and all of it rolled back with the purchases

    ran.clear()
    body = await api.gql(
        admin,
        "mutation($i: OpenComplaintInput!) { openComplaint(input: $i) { complaint { id } } }",
        {"i": {"customerId": customer["id"], "subject": "s", "description": "d", "category": "delivery"}},
    )
    assert body.get("errors"), body
    assert ran, "the step ran before the failure"
    assert await _state(api, cid) == before
