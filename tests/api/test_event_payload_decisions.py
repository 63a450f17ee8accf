"""An event's payload shows a subscriber only what its decisions let it read, over real HTTP and a real
WebSocket (uvicorn on loopback, a real webhook receiver): the default ``partner`` role reads a customer's
tier but not its tier history (``TierChange.*``), so a partner's ``tier.changed`` carries the customer and
the tier it moved to, not the history row's ``fromTier``, ``changeType`` and ``policyVersion``; an
admin's carries all of them. Webhooks keep what the registering caller's decisions withhold with the
endpoint (decisions are known only while a caller is there); subscriptions apply the subscriber's
decisions at each event (authz/catalogue.py ``EVENT_DATA``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from infra.repos.events import WEBHOOK_QUEUE
from tests.api.test_subscriptions import CREATE, ack, connected, next_message, serve, settled, subscribe
from tests.api.webhook_receiver import Receiver

ALL_KEYS = {"customerId", "fromTier", "toTier", "changeType", "policyVersion"}
PARTNER_KEYS = {"customerId", "toTier"}  # the partner role: Customer.tier, no Customer.tierHistory
REGISTER = """mutation($input: RegisterWebhookEndpointInput!) { registerWebhookEndpoint(input: $input) {
    endpoint { id } userErrors { code message } } }"""
UPDATE = """mutation($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) {
    endpoint { id } userErrors { code message } } }"""
HISTORY_KEYS = ["tier.changed:changeType", "tier.changed:fromTier", "tier.changed:policyVersion"]
HISTORY = (
    "query($id: ID!) { customer(id: $id) { tier { code } tierHistory(first: 5) { edges { node { changeType } } } } }"
)


async def test_a_partner_hears_of_a_tier_change_without_the_history_fields_it_may_not_read(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database_url()
    partner_hook, staff_hook = Receiver().start(), Receiver().start()
    try:
        async with serve(url, webhook_allow_private_targets=True) as one:
            partner = await one.partner_token("Shop A")
            admin = await one.user("alice", "admin")
            for token, hook in ((partner, partner_hook), (admin, staff_hook)):
                body = await one.gql(token, REGISTER, {"input": {"url": hook.url, "eventTypes": ["TIER_CHANGED"]}})
                assert body["data"]["registerWebhookEndpoint"]["userErrors"] == [], body
            async with connected(one, partner) as p, connected(one, admin) as s:
                await ack(p)
                await ack(s)
                await subscribe(p, types=["TIER_CHANGED"])
                await subscribe(s, types=["TIER_CHANGED"])
                await settled(one, p)
                made = await one.gql(partner, CREATE, {"input": {"name": "Own Person", "externalRef": "a-1"}})
                customer = made["data"]["createCustomer"]["customer"]["id"]
                heard = (await next_message(p, 5))["payload"]["data"]["events"]
                staff_heard = (await next_message(s, 5))["payload"]["data"]["events"]
            # what the partner reads of this customer over the API: the tier, not the history behind it
            read = await one.gql(partner, HISTORY, {"id": customer})
            assert read["data"]["customer"]["tier"] == {"code": "bronze"}
            assert read["data"]["customer"]["tierHistory"] is None
            assert [e["extensions"]["code"] for e in read["errors"]] == ["FORBIDDEN_FIELD"]
            # the subscription: the same, and the admin's carries everything
            assert heard["customerId"] == staff_heard["customerId"] == customer
            assert set(heard["data"]) == PARTNER_KEYS, heard
            assert heard["data"] == {"customerId": customer, "toTier": "bronze"}
            assert set(staff_heard["data"]) == ALL_KEYS, staff_heard
            assert staff_heard["data"]["changeType"] == "initial"
            # the webhooks
            deadline = asyncio.get_running_loop().time() + 30
            while not (partner_hook.received and staff_hook.received):
                await one.services.jobs.run_worker_async(
                    queues=[WEBHOOK_QUEUE], wait=False, install_signal_handlers=False
                )
                assert asyncio.get_running_loop().time() < deadline, "webhook deliveries did not finish in time"
                await asyncio.sleep(0.1)
            to_partner = json.loads(partner_hook.received[0].body)
            to_staff = json.loads(staff_hook.received[0].body)
            assert to_partner["data"] == {"customerId": customer, "toTier": "bronze"}, to_partner
            assert set(to_staff["data"]) == ALL_KEYS, to_staff
            # the outbox keeps the whole event: each endpoint's payload is cut when it is sent
            async with one.services.engine.connect() as conn:
                stored = (await conn.execute(text("SELECT data FROM events WHERE type = 'tier.changed'"))).scalar_one()
            assert set(stored) == ALL_KEYS
            # kept with the endpoint, recomputed from the decisions of its partner when it changes it; an admin's
            # change of a partner's endpoint never widens what the partner hears, nor chooses its event types
            mine = (await one.gql(partner, "{ webhookEndpoints { id } }"))["data"]["webhookEndpoints"][0]["id"]
            types = await one.gql(admin, UPDATE, {"input": {"id": mine, "eventTypes": ["TIER_CHANGED"]}})
            assert [e["code"] for e in types["data"]["updateWebhookEndpoint"]["userErrors"]] == ["FORBIDDEN"], types
            for token, expected in ((partner, HISTORY_KEYS), (admin, HISTORY_KEYS), (partner, HISTORY_KEYS)):
                changed = await one.gql(token, UPDATE, {"input": {"id": mine, "description": "changed"}})
                assert changed["data"]["updateWebhookEndpoint"]["userErrors"] == [], changed
                async with one.services.engine.connect() as conn:
                    kept = await conn.execute(
                        text("SELECT withheld FROM webhook_endpoints WHERE url = :u"), {"u": partner_hook.url}
                    )
                    assert kept.scalar_one() == expected
    finally:
        partner_hook.stop()
        staff_hook.stop()
