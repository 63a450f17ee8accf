"""N+1 guard: the SQL statements of a page do not grow with its size.

The demo seed writes the bulk (120 customers with purchases, metrics and tiers, in one transaction),
a direct bulk INSERT gives every customer complaints (acceptable for this performance test only), and a
few customers and complaints go through the API like users' would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from demo.seed import seed
from infra import crypto
from infra.db import StatementCounter
from tests.api.helpers import create_customer, module_api, open_complaint, record_purchases
from tests.conftest import Api

CUSTOMERS = """
query($n: Int!) {
  customers(first: $n) {
    edges { node { name tier { code } metrics { orders12m }
                   complaints(first: 3) { edges { node { subject status } } } } }
  }
}"""
COMPLAINTS = """
query($n: Int!) {
  complaints(first: $n) {
    edges { node { subject category { code } rootCause { code } events { toStatus }
                   customer { name tier { code } metrics { orders12m } } } }
  }
}"""
MAX_STATEMENTS = 8
# The authorization service polls the policy version, the trusted documents their version, in the background
# on the same engine. The rate limiter leases a slice of the caller's budget now and then (not per request):
# bookkeeping too.
BACKGROUND = ("authz_state", "casbin_rules", "trusted_document_state", "rate_limit_buckets")


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        await seed(running.services.engine, customers=120, progress=False)
        admin = await running.user("alice", "admin")
        for n in range(5):
            customer = await create_customer(running, admin, name=f"Through The Api {n}")
            await record_purchases(running, admin, {"customerId": customer["id"], "amount": "25.00"})
            await open_complaint(running, admin, customer["id"], subject=f"api complaint {n}")
        async with running.services.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO complaints (customer_id, subject, description, category_code, root_cause_code, "
                    "                        resolution_code, assignee, severity, channel, status, opened_at) "
                    "SELECT c.id, 'bulk complaint ' || n, :description, 'delivery', 'process', 'refund', 'bob', 'low', "
                    "       'web', 'resolved', now() - n * interval '1 hour' "
                    "FROM customers c CROSS JOIN generate_series(1, 2) AS n"
                ),
                {"description": crypto.current().encrypt("bulk", "complaints.description")},  # encrypted at rest
            )
        yield running


async def _run(api: Api, token: str, query: str, n: int) -> tuple[dict[str, object], list[str]]:
    with StatementCounter(api.services.engine) as counter:
        body = await api.gql(token, query, {"n": n})
    assert "errors" not in body, body
    return body, [s for s in counter.statements if not any(t in s for t in BACKGROUND)]


async def test_a_customer_page_costs_the_same_statements_for_10_and_100_customers(api: Api) -> None:
    admin = await api.user("alice", "admin")
    small, small_sql = await _run(api, admin, CUSTOMERS, 10)
    large, large_sql = await _run(api, admin, CUSTOMERS, 100)

    edges = large["data"]["customers"]["edges"]  # type: ignore[index]
    assert len(edges) == 100
    assert len(small["data"]["customers"]["edges"]) == 10  # type: ignore[index]
    # The nested data is really there: every customer has complaints, a tier and metrics.
    assert all(len(e["node"]["complaints"]["edges"]) >= 2 for e in edges)
    assert all(e["node"]["tier"] is not None and e["node"]["metrics"] is not None for e in edges)

    assert len(small_sql) == len(large_sql), "\n".join(large_sql)
    assert len(large_sql) <= MAX_STATEMENTS, "\n".join(large_sql)


async def test_a_complaint_page_costs_the_same_statements_for_10_and_100_complaints(api: Api) -> None:
    admin = await api.user("alice", "admin")
    small, small_sql = await _run(api, admin, COMPLAINTS, 10)
    large, large_sql = await _run(api, admin, COMPLAINTS, 100)
    edges = large["data"]["complaints"]["edges"]  # type: ignore[index]
    assert len(edges) == 100
    assert len({e["node"]["customer"]["name"] for e in edges}) > 10
    assert all(e["node"]["category"] is not None and e["node"]["events"] is not None for e in edges)
    assert all(e["node"]["customer"]["tier"] is not None for e in edges)
    small_edges = small["data"]["complaints"]["edges"]  # type: ignore[index]
    assert any(e["node"]["rootCause"] is not None for e in small_edges)
    assert len(small_sql) == len(large_sql), "\n".join(large_sql)
    assert len(large_sql) <= MAX_STATEMENTS + 2, "\n".join(large_sql)
