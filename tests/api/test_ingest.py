"""Purchase ingest (issue 7): a batch costs the same number of SQL statements whatever its size — the
partner's customer references resolved in one statement, one insert, the metrics and tier of the customers
touched, one queued churn job — and references resolve as before (unknown ones are userErrors with the
item's index, nothing written)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from infra import churn
from infra.db import StatementCounter
from tests.api.helpers import create_customer, module_api, raw_id, record_purchases
from tests.conftest import Api

RECORD = """mutation($input: RecordPurchasesInput!) {
  recordPurchases(input: $input) { insertedCount userErrors { field code } } }"""
# The authorization service polls the policy version in the background on the same engine.
BACKGROUND = ("authz_state", "casbin_rules")


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


async def _partner_customers(api: Api, n: int, prefix: str = "ING") -> tuple[str, list[str]]:
    token, _ = await api.partner_token()
    ids = []
    for i in range(n):
        made = await create_customer(api, token, name=f"Ingest Ref {i}", externalRef=f"{prefix}-{i}")
        ids.append(made["id"])
    return token, ids


async def _statements(api: Api, token: str, items: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    with StatementCounter(api.services.engine) as counter:
        body = await api.gql(token, RECORD, {"input": {"purchases": items}})
    return body, [s for s in counter.statements if not any(b in s for b in BACKGROUND)]


async def test_a_batch_costs_the_same_statements_whatever_its_size(api: Api) -> None:
    token, ids = await _partner_customers(api, 12)
    counts = []
    for size, run in ((2, "a"), (12, "b"), (60, "c")):
        items = [
            {"customerExternalRef": f"ING-{i % 12}", "externalId": f"{run}-{i}", "amount": f"{5 + i}.25"}
            for i in range(size)
        ]
        body, statements = await _statements(api, token, items)
        assert body["data"]["recordPurchases"] == {"insertedCount": size, "userErrors": []}, body
        counts.append(len(statements))
        assert sum("procrastinate_defer_jobs" in s for s in statements) == 1  # one churn job per batch
    assert counts[0] == counts[1] == counts[2], counts
    async with api.services.engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT c.external_ref, count(*) AS n, sum(p.amount) AS total FROM purchases p"
                    " JOIN customers c ON c.id = p.customer_id WHERE p.external_id LIKE 'c-%' GROUP BY 1"
                )
            )
        ).all()
        metrics = (
            await conn.execute(
                text("SELECT order_count FROM customer_metrics WHERE customer_id = :id"), {"id": raw_id(ids[0])}
            )
        ).scalar_one()
        jobs = (
            await conn.execute(
                text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = :t"), {"t": churn.REFRESH_TASK}
            )
        ).scalar_one()
    assert len(stored) == 12  # every reference resolved to its own customer
    assert sum(r.n for r in stored) == 60
    assert metrics == 1 + 1 + 5  # ING-0: once in the batch of 2, once in 12, five times in 60
    assert jobs == 3


async def test_unknown_references_are_user_errors_and_nothing_is_written(api: Api) -> None:
    token, _ = await _partner_customers(api, 1, prefix="UNK")
    other, _ = await api.partner_token("Contoso Call Centre")
    items = [
        {"customerExternalRef": "UNK-0", "externalId": "u-1", "amount": "10.00"},
        {"customerExternalRef": "NO-SUCH", "externalId": "u-2", "amount": "10.00"},
        {"customerExternalRef": "UNK-0", "externalId": "u-3", "amount": "10.00"},
    ]
    body = await api.gql(token, RECORD, {"input": {"purchases": items}})
    assert body["data"]["recordPurchases"]["userErrors"] == [
        {"field": "purchases[1].customerExternalRef", "code": "INVALID"}
    ]
    # Another partner's references are not this partner's.
    body = await api.gql(other, RECORD, {"input": {"purchases": items[:1]}})
    assert body["data"]["recordPurchases"]["userErrors"] == [
        {"field": "purchases[0].customerExternalRef", "code": "INVALID"}
    ]
    async with api.services.engine.connect() as conn:
        written = (await conn.execute(text("SELECT count(*) FROM purchases WHERE external_id LIKE 'u-%'"))).scalar_one()
    assert written == 0
    # The same batch by customer id for the good items goes through.
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="By Id"))["id"]
    assert (await record_purchases(api, admin, {"customerId": customer, "amount": "3.00"}))["insertedCount"] == 1
