"""Issue 12: one SQL statement per root field of a read (plus the audit insert when one is due), whatever the
page size or the depth, counted from every statement the app's engine sends (``StatementTap``: SQLAlchemy's
and those sent on the asyncpg connection itself), for pages of 1, 10 and 50 and depths 1 to 3.

The compiler (api/graphql/compiler.py) answers these reads; the tap itself is tested too.

Data: the demo seed (120 customers with purchases, metrics and tiers), two complaints per customer inserted
in bulk (acceptable for a statement count only), a few customers and complaints through the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from demo.seed import seed
from infra import crypto
from tests.api.differential import Probe, StatementTap, tapped
from tests.api.helpers import create_customer, module_api, open_complaint, record_purchases
from tests.conftest import Api

CUSTOMER_DEPTH = {
    1: "name email phone tier { code name } metrics { orders12m }",
    2: "name email tier { code } complaints(first: 3) { edges { node { subject status customer { name } } } }",
    3: (
        "name email tier { code } complaints(first: 3) { totalCount edges { node { subject "
        "customer { name phone complaints(first: 2) { edges { node { status openedAt } } } } } } }"
    ),
}
COMPLAINT_DEPTH = {
    1: "subject status severity category { code }",
    2: "subject status customer { name email tier { code } }",
    3: "subject customer { name email complaints(first: 2) { edges { node { subject customer { name } } } } }",
}


def customers_query(depth: int) -> str:
    return (
        "query($n: Int!) { customers(first: $n) { totalCount pageInfo { hasNextPage endCursor } "
        f"edges {{ cursor node {{ id {CUSTOMER_DEPTH[depth]} }} }} }} }}"
    )


def complaints_query(depth: int) -> str:
    return (
        "query($n: Int!) { complaints(first: $n) { pageInfo { hasNextPage } "
        f"edges {{ node {{ id {COMPLAINT_DEPTH[depth]} }} }} }} }}"
    )


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db, rate_limit_enabled=False) as running:
        await seed(running.services.engine, customers=120, progress=False)
        admin = await running.user("alice", "admin")
        for n in range(3):
            customer = await create_customer(running, admin, name=f"Through The Api {n}")
            await record_purchases(running, admin, {"customerId": customer["id"], "amount": "25.00"})
            await open_complaint(running, admin, customer["id"], subject=f"api complaint {n}")
        async with running.services.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO complaints (customer_id, subject, description, category_code, severity, channel, "
                    "                        status, opened_at) "
                    "SELECT c.id, 'bulk complaint ' || n, :description, 'delivery', 'low', 'web', 'open', "
                    "       now() - n * interval '1 hour' "
                    "FROM customers c CROSS JOIN generate_series(1, 2) AS n"
                ),
                {"description": crypto.current().encrypt("bulk", "complaints.description")},
            )
        await running.gql(admin, "{ __typename }")  # builds the GraphQL app (and its executor)
        yield running


async def counted(api: Api, token: str, query: str, variables: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    with tapped(api) as tap:
        body = await api.gql(token, query, variables)
    assert body["_status"] == 200, body
    return body, tap.statements


async def test_the_tap_sees_statements_of_sqlalchemy_and_of_the_raw_driver_once_each(api: Api) -> None:
    """What the statement counts rely on: a statement SQLAlchemy executes and one sent on the asyncpg
    connection underneath are both seen, once."""
    with StatementTap(api.services.engine) as tap:
        async with api.services.engine.connect() as conn:
            assert (await conn.execute(text("SELECT 40 + 1"))).scalar_one() == 41
            raw = await conn.get_raw_connection()
            assert await raw.driver_connection.fetchval("SELECT 41 + 1") == 42  # type: ignore[union-attr]
            await conn.commit()
    assert tap.statements == ["SELECT 40 + 1", "SELECT 41 + 1"]
    # and a request's statements: the page's read and the audit insert, both seen
    admin = await api.user("alice", "admin")
    body, statements = await counted(api, admin, customers_query(2), {"n": 10})
    assert len(body["data"]["customers"]["edges"]) == 10
    assert any("customers" in s for s in statements)
    assert any("FROM complaints" in s for s in statements), "\n\n".join(statements)
    assert any("INSERT INTO audit_log" in s for s in statements)  # the e-mail was read unmasked


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 10, 50])
@pytest.mark.parametrize("root", ["customers", "complaints"])
async def test_one_statement_per_root_field_whatever_the_page_size_and_depth(
    api: Api, root: str, n: int, depth: int
) -> None:
    probe = Probe(api)
    query = customers_query(depth) if root == "customers" else complaints_query(depth)
    sensitive = root == "customers" or depth > 1  # e-mail and phone (complaints at depth 1: none)
    for who, roles, audited in (("alice", ("admin",), sensitive), ("bob", ("support_agent",), False)):
        token = await api.user(who, *roles)
        before = probe.runs()
        body, statements = await counted(api, token, query, {"n": n})
        assert "errors" not in body, body
        assert probe.runs() == before + 1, "not answered by the compiler"
        edges = body["data"][root]["edges"]
        assert len(edges) == n  # real rows, nested ones too
        if depth > 1:
            assert all(e["node"]["customer" if root == "complaints" else "complaints"] for e in edges)
        reads = [s for s in statements if "audit_log" not in s]
        audit = [s for s in statements if "INSERT INTO audit_log" in s]
        assert len(reads) == 1, "\n\n".join(statements)
        assert len(audit) == (1 if audited else 0), "\n\n".join(statements)
        assert len(statements) == len(reads) + len(audit), "\n\n".join(statements)


async def test_several_root_fields_one_statement_each(api: Api) -> None:
    admin = await api.user("alice", "admin")
    agent = await api.user("bob", "support_agent")
    first = (await api.gql(admin, "{ customers(first: 1) { edges { node { id } } } }"))["data"]
    customer_id = first["customers"]["edges"][0]["node"]["id"]
    query = (
        "query($id: ID!, $n: Int!) { __typename "
        f"a: customers(first: $n) {{ edges {{ node {{ {CUSTOMER_DEPTH[3]} }} }} }} "
        f"b: complaints(first: $n) {{ edges {{ node {{ {COMPLAINT_DEPTH[2]} }} }} }} "
        "c: customer(id: $id) { name tier { code } complaints(first: 2) { totalCount } } "
        f"d: customers(first: 1) {{ totalCount }} }}"
    )
    probe = Probe(api)
    for token, audited in ((admin, True), (agent, False)):
        before = probe.runs()
        body, statements = await counted(api, token, query, {"id": customer_id, "n": 10})
        assert "errors" not in body, body
        assert probe.runs() == before + 1
        assert len(body["data"]["a"]["edges"]) == 10
        reads = [s for s in statements if "audit_log" not in s]
        assert len(reads) == 4, "\n\n".join(statements)  # __typename needs none
        assert len(statements) - len(reads) == (1 if audited else 0), "\n\n".join(statements)
