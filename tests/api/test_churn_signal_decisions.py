"""A churn signal shows a caller only what its decisions let it read, over real HTTP (uvicorn on loopback):
the default ``marketing`` role reads churn risk, metrics and survey results, but not a customer's
complaints nor its tier history, so the signals made of those (repeated, breached and reopened complaints;
a recent tier downgrade) are left out of its ``churnRisk.signals``, in ``customer`` and in the
``churnQueue`` alike, and it can't filter the queue by them. An admin sees them all
(authz/catalogue.py ``CHURN_SIGNALS``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import text

from infra import churn
from tests.api.helpers import create_customer, open_complaint, raw_id
from tests.api.test_subscriptions import serve

RISK = "query($id: ID!) { customer(id: $id) { churnRisk { level score signals } } }"
HIDDEN = "query($id: ID!) { customer(id: $id) { tierHistory(first: 5) { edges { node { changeType } } } complaints { totalCount } } }"
QUEUE = """query($f: ChurnQueueFilter) { churnQueue(filter: $f, first: 10) {
    edges { node { customer { id } churnRisk { signals } } } } }"""


async def test_marketing_sees_no_signal_made_of_complaints_or_tier_history(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database_url()
    async with serve(url) as one:
        admin = await one.user("alice", "admin")
        marketing = await one.user("dave", "marketing")
        customer = (await create_customer(one, admin, name="Dana Downgraded"))["id"]  # type: ignore[arg-type]
        for _ in range(2):
            await open_complaint(one, admin, customer)  # type: ignore[arg-type]
        async with one.services.engine.begin() as conn:  # the history row the tier engine writes on a downgrade
            await conn.execute(
                text(
                    "INSERT INTO tier_changes (customer_id, from_tier, to_tier, change_type, reason, changed_at)"
                    " VALUES (:id, 'gold', 'silver', 'downgrade', 'retain rule of gold fails',"
                    " now() - interval '10 days')"
                ),
                {"id": raw_id(customer)},
            )
            await churn.refresh(conn, [raw_id(customer)])

        full = (await one.gql(admin, RISK, {"id": customer}))["data"]["customer"]["churnRisk"]
        assert {s["code"] for s in full["signals"]} == {"repeated_complaints", "tier_downgrade"}, full
        assert full["level"] in ("yellow", "red")

        # what marketing may read of this customer: neither its complaints nor its tier history
        hidden = await one.gql(marketing, HIDDEN, {"id": customer})
        assert hidden["data"]["customer"] == {"tierHistory": None, "complaints": None}
        assert sorted(e["extensions"]["code"] for e in hidden["errors"]) == ["FORBIDDEN_FIELD", "FORBIDDEN_FIELD"]

        seen = (await one.gql(marketing, RISK, {"id": customer}))["data"]["customer"]["churnRisk"]
        assert seen["signals"] == [], seen
        assert seen["level"] == full["level"]  # the level and score are churn risk's own fields
        queue = await one.gql(marketing, QUEUE, {"f": None})
        assert "errors" not in queue, queue
        entries = [e["node"] for e in queue["data"]["churnQueue"]["edges"]]
        assert [e["customer"]["id"] for e in entries] == [customer]
        assert entries[0]["churnRisk"]["signals"] == []
        # nor may it find customers by those signals; a signal it may read still filters
        refused = await one.gql(marketing, QUEUE, {"f": {"signals": ["tier_downgrade"]}})
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"], refused
        assert refused["data"]["churnQueue"] is None
        quiet = await one.gql(marketing, QUEUE, {"f": {"signals": ["silence"]}})
        assert "errors" not in quiet, quiet
        assert quiet["data"]["churnQueue"]["edges"] == []
        admin_queue = await one.gql(admin, QUEUE, {"f": {"signals": ["tier_downgrade"]}})
        assert [e["node"]["customer"]["id"] for e in admin_queue["data"]["churnQueue"]["edges"]] == [customer]
