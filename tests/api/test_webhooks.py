"""Webhooks end to end: changes made over the API reach real HTTP receivers on loopback (allowed here by
``TIERWISE_WEBHOOK_ALLOW_PRIVATE_TARGETS``) through the outbox and procrastinate, each event exactly once
per endpoint even when a receiver answers 500 first or is down for a while; signed as Standard Webhooks
says (verified with the ``standardwebhooks`` reference code and by hand from the spec); a partner's
endpoint gets its own customers' events only; SSRF targets are refused at delivery; a run of failures
disables an endpoint; a failed delivery is replayed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from standardwebhooks import Webhook

from api.graphql.core.ids import to_global_id
from authz.catalogue import EVENT_DATA
from infra import crypto
from infra.jobs import QUEUE
from infra.keyrotation import key_status, rotate
from infra.repos.events import WEBHOOK_QUEUE
from tests.api.helpers import (
    USER_ERRORS,
    create_customer,
    error_codes,
    ok,
    payload,
    raw_id,
    record_purchases,
)
from tests.api.webhook_receiver import Receiver
from tests.conftest import Api, running_api, test_settings

ALL_TYPES = [
    "TIER_CHANGED",
    "COMPLAINT_SLA_BREACHED",
    "COMPLAINT_ESCALATED",
    "CHURN_RISK_RAISED",
    "CUSTOMER_MERGED",
    "CUSTOMER_ERASED",
]
REGISTER = f"""mutation($input: RegisterWebhookEndpointInput!) {{ registerWebhookEndpoint(input: $input) {{
    endpoint {{ id url eventTypes partnerId enabled version }} secret {USER_ERRORS} }} }}"""
UPDATE = f"""mutation($input: UpdateWebhookEndpointInput!) {{ updateWebhookEndpoint(input: $input) {{
    endpoint {{ id enabled consecutiveFailures disabledReason version }} secret {USER_ERRORS} }} }}"""
DELIVERIES = """query($e: ID, $s: [DeliveryStatus!]) { webhookDeliveries(endpointId: $e, status: $s, first: 100) {
    totalCount edges { node { id endpointId eventId eventType status attempts lastStatusCode lastError } } } }"""
REPLAY = (
    f"""mutation($id: ID!) {{ replayWebhookDelivery(id: $id) {{ delivery {{ id status attempts }} {USER_ERRORS} }} }}"""
)
MERGE = f"""mutation($s: ID!, $d: ID!) {{ mergeCustomers(survivorId: $s, duplicateId: $d) {{
    survivor {{ id }} {USER_ERRORS} }} }}"""
ERASE = f"""mutation($id: ID!) {{ eraseCustomer(id: $id) {{ erasedId {USER_ERRORS} }} }}"""

QUICK = {
    "webhook_allow_private_targets": True,
    "webhook_retry_base_s": 0.2,
    "webhook_retry_max_s": 0.4,
    "webhook_max_attempts": 100,
    "webhook_disable_after": 1000,
}


@asynccontextmanager
async def app_with(fresh_database_url: Callable[[], Awaitable[str]], **settings: Any) -> AsyncIterator[Api]:
    async with running_api(await fresh_database_url(), test_settings(**settings)) as api:
        yield api


async def register(api: Api, token: str, url: str, types: list[str], **extra: Any) -> dict[str, Any]:
    body = await api.gql(token, REGISTER, {"input": {"url": url, "eventTypes": types, **extra}})
    return ok(body, "registerWebhookEndpoint")


async def work(api: Api) -> None:
    """Run the webhook jobs due now (one pass of a worker)."""
    await api.services.jobs.run_worker_async(queues=[WEBHOOK_QUEUE], wait=False, install_signal_handlers=False)


async def work_until(api: Api, done: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        await work(api)
        if await done():
            return
        assert asyncio.get_running_loop().time() < deadline, "webhook deliveries did not finish in time"
        await asyncio.sleep(0.1)


async def rows(api: Api, sql: str, **params: Any) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def pending(api: Api) -> int:
    return int((await rows(api, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))[0][0])


def spec_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The signature as the Standard Webhooks specification defines it, written from the spec's text."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_the_spec_signature_matches_the_published_test_vector() -> None:
    """The specification's example (secret, id, timestamp, payload → signature), by hand and by the package."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert spec_signature(secret, msg_id, timestamp, body) == expected
    import datetime as dt

    at = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    assert Webhook(secret).sign(msg_id, at, body.decode()) == expected


async def test_each_event_reaches_each_endpoint_once_through_500s_and_downtime(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    flaky = Receiver(fail_first=2).start()  # answers 500 twice, then 204
    down = Receiver()  # nothing listens on its port yet
    try:
        async with app_with(fresh_database_url, **QUICK) as api:
            admin = await api.user("alice", "admin")
            one = await register(api, admin, flaky.url, ALL_TYPES)
            two = await register(api, admin, down.url, ALL_TYPES)
            assert one["secret"].startswith("whsec_")
            assert one["secret"] != two["secret"]

            ann = await create_customer(api, admin, name="Ann Lee", email="ann.lee@example.com")
            await record_purchases(api, admin, {"customerId": ann["id"], "externalId": "o-1", "amount": "2500.00"})
            dup = await create_customer(api, admin, name="Ann Lee", email="ann.lee@example.com")
            ok(await api.gql(admin, MERGE, {"s": ann["id"], "d": dup["id"]}), "mergeCustomers")
            ok(await api.gql(admin, ERASE, {"id": ann["id"]}), "eraseCustomer")
            events = await rows(api, "SELECT id::text AS id, type, data FROM events ORDER BY seq")
            ids = [e.id for e in events]
            types = [e.type for e in events]
            assert types.count("customer.merged") == 1
            assert types.count("customer.erased") == 1
            assert types.count("tier.changed") >= 3  # Ann placed, Ann up to silver, the duplicate placed
            assert all(set(e.data) == set(EVENT_DATA[e.type]) for e in events)  # every key declared

            async def flaky_done() -> bool:
                return len(flaky.received) >= len(ids)

            await work_until(api, flaky_done)
            retried = await rows(
                api,
                "SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id"
                " WHERE w.url = :u AND d.attempts >= 2",
                u=down.url,
            )
            assert retried[0][0] >= 1, "the down receiver's deliveries were attempted and retried meanwhile"
            down.start()

            async def all_done() -> bool:
                return await pending(api) == 0

            await work_until(api, all_done)
            await asyncio.sleep(0.3)
            await work(api)  # nothing is left to send twice

            for receiver, endpoint in ((flaky, one), (down, two)):
                assert sorted(receiver.ids()) == sorted(ids), "each event exactly once per endpoint"
                for item in receiver.received:
                    verified = Webhook(endpoint["secret"]).verify(item.body, item.headers)
                    h = item.headers
                    assert h["webhook-signature"] == spec_signature(
                        endpoint["secret"], h["webhook-id"], h["webhook-timestamp"], item.body
                    )
                    event = next(e for e in events if e.id == h["webhook-id"])
                    assert verified["type"] == event.type
                    assert verified["data"] == event.data
                    assert b"Ann Lee" not in item.body
                    assert b"ann.lee" not in item.body
            assert len(flaky.refused) == 2
            bodies = [json.loads(r.body) for r in flaky.received]
            placed = [b for b in bodies if b["type"] == "tier.changed" and b["data"]["customerId"] == ann["id"]]
            assert placed[0]["data"] == {
                "customerId": ann["id"],
                "fromTier": None,
                "toTier": "bronze",
                "changeType": "initial",
                "policyVersion": 1,
            }

            log = await api.gql(admin, DELIVERIES, {"e": two["endpoint"]["id"]})
            nodes = [e["node"] for e in log["data"]["webhookDeliveries"]["edges"]]
            assert len(nodes) == len(ids)
            assert {n["status"] for n in nodes} == {"DELIVERED"}
            assert max(n["attempts"] for n in nodes) >= 2
            assert all(n["lastStatusCode"] == 204 for n in nodes)
    finally:
        flaky.stop()
        down.stop()


async def test_a_partner_endpoint_receives_only_its_own_customers_events(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    ra, rb, staff = Receiver().start(), Receiver().start(), Receiver().start()
    try:
        async with app_with(fresh_database_url, **QUICK) as api:
            admin = await api.user("alice", "admin")
            token_a, partner_a = await api.partner_token("Shop A")
            token_b, partner_b = await api.partner_token("Shop B")
            mine = await register(api, token_a, ra.url, ["TIER_CHANGED"])
            assert mine["endpoint"]["partnerId"] == str(partner_a)  # a partner's endpoint is its partner's
            # by an admin, for partner B
            await register(api, admin, rb.url, ["TIER_CHANGED"], partnerId=str(partner_b))
            await register(api, admin, staff.url, ["TIER_CHANGED"])

            # a partner can't register for another partner, nor subscribe to what it can't read
            other = await api.gql(
                token_a,
                REGISTER,
                {"input": {"url": ra.url, "eventTypes": ["TIER_CHANGED"], "partnerId": str(partner_b)}},
            )
            assert [e["code"] for e in payload(other, "registerWebhookEndpoint")["userErrors"]] == ["NOT_FOUND"]
            churn = await api.gql(token_a, REGISTER, {"input": {"url": ra.url, "eventTypes": ["CHURN_RISK_RAISED"]}})
            assert [e["code"] for e in payload(churn, "registerWebhookEndpoint")["userErrors"]] == ["FORBIDDEN"]

            a = await create_customer(api, token_a, name="Alma A", externalRef="a-1")
            b = await create_customer(api, token_b, name="Bert B", externalRef="b-1")
            await create_customer(api, admin, name="Staff Only")

            async def done() -> bool:
                return await pending(api) == 0

            await work_until(api, done)
            got_a = [json.loads(r.body)["data"]["customerId"] for r in ra.received]
            got_b = [json.loads(r.body)["data"]["customerId"] for r in rb.received]
            assert got_a == [a["id"]]
            assert got_b == [b["id"]]
            assert len(staff.received) == 3  # staff endpoints hear of every customer

            # partner A sees its own endpoint and deliveries only; B's endpoint is not found
            listed = (await api.gql(token_a, "{ webhookEndpoints { id url partnerId } }"))["data"]["webhookEndpoints"]
            assert [e["url"] for e in listed] == [ra.url]
            log = (await api.gql(token_a, DELIVERIES, {}))["data"]["webhookDeliveries"]
            assert log["totalCount"] is None or log["totalCount"] == 1
            assert [e["node"]["endpointId"] for e in log["edges"]] == [mine["endpoint"]["id"]]
            b_endpoint = next(
                e
                for e in (await api.gql(admin, "{ webhookEndpoints { id url } }"))["data"]["webhookEndpoints"]
                if e["url"] == rb.url
            )
            hijack = await api.gql(token_a, UPDATE, {"input": {"id": b_endpoint["id"], "url": ra.url}})
            assert [e["code"] for e in payload(hijack, "updateWebhookEndpoint")["userErrors"]] == ["NOT_FOUND"]
    finally:
        for r in (ra, rb, staff):
            r.stop()


async def test_no_event_without_its_change(fresh_database_url: Callable[[], Awaitable[str]]) -> None:
    """A refused change writes no event, no delivery and no job; a change that moves no tier emits nothing."""
    receiver = Receiver().start()
    try:
        async with app_with(fresh_database_url, **QUICK) as api:
            admin = await api.user("alice", "admin")
            await register(api, admin, receiver.url, ALL_TYPES)
            ann = await create_customer(api, admin, name="Ann Lee")
            bob = await create_customer(api, admin, name="Bob Ray")
            before = await rows(
                api,
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM webhook_deliveries),"
                " (SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'tierwise.webhook_deliver')",
            )
            stale = await api.gql(
                admin,
                """mutation($s: ID!, $d: ID!) { mergeCustomers(survivorId: $s, duplicateId: $d,
                expectedSurvivorVersion: 99) { survivor { id } userErrors { code } } }""",
                {"s": ann["id"], "d": bob["id"]},
            )
            assert [e["code"] for e in payload(stale, "mergeCustomers")["userErrors"]] == ["CONFLICT"]
            await record_purchases(api, admin, {"customerId": ann["id"], "externalId": "small", "amount": "1.00"})
            after = await rows(
                api,
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM webhook_deliveries),"
                " (SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'tierwise.webhook_deliver')",
            )
            assert after == before
            assert before[0][0] == 2  # the two placements, nothing else
            assert raw_id(ann["id"])
    finally:
        receiver.stop()


async def test_private_targets_are_refused_at_delivery(fresh_database_url: Callable[[], Awaitable[str]]) -> None:
    """Without the setting, loopback is refused whatever the URL names (an IP, or a name resolving to it),
    and no connection is made."""
    receiver = Receiver().start()
    try:
        async with app_with(fresh_database_url, webhook_max_attempts=1) as api:
            admin = await api.user("alice", "admin")
            await register(api, admin, receiver.url, ["TIER_CHANGED"])
            await register(api, admin, f"http://localhost:{receiver.port}/hooks", ["TIER_CHANGED"])
            await create_customer(api, admin, name="Ann Lee")

            async def done() -> bool:
                return await pending(api) == 0

            await work_until(api, done)
            failed = await rows(api, "SELECT status, attempts, last_error FROM webhook_deliveries ORDER BY last_error")
            assert [(r.status, r.attempts) for r in failed] == [("failed", 1), ("failed", 1)]
            assert all("loopback" in r.last_error for r in failed), failed
            assert receiver.received == []
            assert receiver.refused == []
    finally:
        receiver.stop()


async def test_a_run_of_failures_disables_the_endpoint_and_a_replay_delivers(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    receiver = Receiver()  # down
    try:
        async with app_with(
            fresh_database_url, webhook_allow_private_targets=True, webhook_max_attempts=1, webhook_disable_after=2
        ) as api:
            admin = await api.user("alice", "admin")
            endpoint = (await register(api, admin, receiver.url, ["TIER_CHANGED"]))["endpoint"]
            await create_customer(api, admin, name="Ann Lee")
            await create_customer(api, admin, name="Bob Ray")

            async def done() -> bool:
                return await pending(api) == 0

            await work_until(api, done)
            listed = await api.gql(admin, "{ webhookEndpoints { id enabled disabledReason consecutiveFailures } }")
            state = listed["data"]["webhookEndpoints"][0]
            assert state["enabled"] is False
            assert "2 failed attempts" in state["disabledReason"]
            await create_customer(api, admin, name="Cy Diaz")  # no delivery to a disabled endpoint
            log = (await api.gql(admin, DELIVERIES, {"e": endpoint["id"]}))["data"]["webhookDeliveries"]["edges"]
            assert [e["node"]["status"] for e in log] == ["FAILED", "FAILED"]

            receiver.start()
            refused = await api.gql(admin, REPLAY, {"id": log[0]["node"]["id"]})
            assert [e["code"] for e in payload(refused, "replayWebhookDelivery")["userErrors"]] == ["CONFLICT"]
            enabled = ok(
                await api.gql(admin, UPDATE, {"input": {"id": endpoint["id"], "enabled": True}}),
                "updateWebhookEndpoint",
            )
            assert enabled["endpoint"]["enabled"] is True
            assert enabled["endpoint"]["consecutiveFailures"] == 0
            replayed = ok(await api.gql(admin, REPLAY, {"id": log[0]["node"]["id"]}), "replayWebhookDelivery")
            assert replayed["delivery"]["status"] == "PENDING"
            await work_until(api, done)
            assert receiver.ids() == [log[0]["node"]["eventId"]]
            again = await api.gql(admin, REPLAY, {"id": log[0]["node"]["id"]})
            assert [e["code"] for e in payload(again, "replayWebhookDelivery")["userErrors"]] == ["CONFLICT"]
            audit = await rows(api, "SELECT action FROM audit_log WHERE action LIKE 'webhook%' ORDER BY id")
            assert [a.action for a in audit] == [
                "webhook_endpoint_registered",
                "webhook_endpoint_updated",
                "webhook_delivery_replayed",
            ]
    finally:
        receiver.stop()


async def test_bad_input_is_refused_and_writes_nothing(fresh_database_url: Callable[[], Awaitable[str]]) -> None:
    async with app_with(fresh_database_url) as api:
        admin = await api.user("alice", "admin")
        for url, field in (
            ("ftp://example.com/x", "url"),
            ("https://user:pw@example.com/x", "url"),
            ("not a url", "url"),
            ("https://example.com/" + "x" * 2100, "url"),
        ):
            body = await api.gql(admin, REGISTER, {"input": {"url": url, "eventTypes": ["TIER_CHANGED"]}})
            errors = payload(body, "registerWebhookEndpoint")["userErrors"]
            assert [e["field"] for e in errors] == [field], (url, errors)
        empty = await api.gql(admin, REGISTER, {"input": {"url": "https://example.com/h", "eventTypes": []}})
        assert [e["field"] for e in payload(empty, "registerWebhookEndpoint")["userErrors"]] == ["eventTypes"]
        unknown = await api.gql(admin, REGISTER, {"input": {"url": "https://example.com/h", "eventTypes": ["NOPE"]}})
        assert error_codes(unknown)  # not an EventType value: refused by GraphQL validation
        nobody = await api.gql(
            admin,
            REGISTER,
            {"input": {"url": "https://example.com/h", "eventTypes": ["TIER_CHANGED"], "partnerId": "not-a-uuid"}},
        )
        assert [e["code"] for e in payload(nobody, "registerWebhookEndpoint")["userErrors"]] == ["NOT_FOUND"]
        count = await rows(api, "SELECT count(*) FROM webhook_endpoints")
        assert count[0][0] == 0
        # the secret is stored encrypted, bound to its row
        made = await register(api, admin, "https://example.com/h", ["TIER_CHANGED"])
        stored = await rows(api, "SELECT secret FROM webhook_endpoints")
        assert stored[0].secret.startswith("tw2:")
        assert made["secret"] not in stored[0].secret


async def test_after_key_rotation_deliveries_are_signed_without_the_old_key(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    """``tierwise keys rotate`` re-encrypts webhook secrets too: once rotated, an instance configured with
    the new key only signs deliveries with the same secret the receiver was given (before the rotation,
    the new key alone could not read it)."""
    k1, k2, bidx = (crypto.generate_key() for _ in range(3))
    saved = crypto._current
    receiver = Receiver().start()
    url = await fresh_database_url()
    try:
        old = test_settings(encryption_keys=SecretStr(f"k1:{k1}"), blind_index_key=SecretStr(bidx), **QUICK)
        async with running_api(url, old) as api:
            admin = await api.user("alice", "admin")
            endpoint = await register(api, admin, receiver.url, ["TIER_CHANGED"])
            [sealed] = await rows(api, "SELECT id, secret FROM webhook_endpoints")
            assert sealed.secret.startswith("tw2:k1:")
            assert endpoint["secret"] not in sealed.secret
            new_only = crypto.Keyring.parse(f"k2:{k2}", bidx)
            with pytest.raises(crypto.DecryptionError, match="'k1'"):
                new_only.decrypt(sealed.secret, "webhook_endpoints.secret", sealed.id)

            crypto.configure(crypto.Keyring.parse(f"k1:{k1},k2:{k2}", bidx))  # k2 current, k1 still readable
            report = await rotate(api.services.engine, batch_size=10)
            assert report.finished
            assert report.values_rotated["webhook_endpoints.secret"] == 1
            async with api.services.engine.connect() as conn:
                assert (await key_status(conn))["webhook_endpoints.secret"] == {"k2": 1}

        new = test_settings(encryption_keys=SecretStr(f"k2:{k2}"), blind_index_key=SecretStr(bidx), **QUICK)
        async with running_api(url, new) as api:  # k1 is gone from this instance
            admin = await api.user("alice", "admin")
            ann = await create_customer(api, admin, name="Ann Rotated")

            async def done() -> bool:
                return await pending(api) == 0

            await work_until(api, done)
            [item] = receiver.received
            verified = Webhook(endpoint["secret"]).verify(item.body, item.headers)
            assert verified["data"]["customerId"] == ann["id"]
            h = item.headers
            assert h["webhook-signature"] == spec_signature(
                endpoint["secret"], h["webhook-id"], h["webhook-timestamp"], item.body
            )
    finally:
        crypto._current = saved
        receiver.stop()


async def test_retention_deletes_old_finished_events_with_their_log_and_keeps_the_rest(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    """The retention job (run by a procrastinate worker, as scheduled) deletes the events older than
    ``event_retention_days`` whose deliveries are all delivered or failed, their delivery log, and the
    finished webhook jobs as old; an old event with a pending delivery (a replay) stays, as do recent ones."""
    ok_receiver = Receiver().start()
    down = Receiver()  # never listens: its deliveries fail (one attempt each)
    try:
        async with app_with(fresh_database_url, **{**QUICK, "webhook_max_attempts": 1}, event_retention_days=30) as api:
            admin = await api.user("alice", "admin")
            before_endpoints = await create_customer(api, admin, name="No Endpoint Yet")  # an event, no delivery
            await register(api, admin, ok_receiver.url, ["TIER_CHANGED"])
            failing = await register(api, admin, down.url, ["TIER_CHANGED"])
            old = [await create_customer(api, admin, name=f"Old Customer {i}") for i in range(3)]
            recent = await create_customer(api, admin, name="Recent Customer")

            async def done() -> bool:
                return await pending(api) == 0

            await work_until(api, done)

            def event_of(customer: dict[str, Any]) -> str:
                return str(raw_id(customer["id"]))

            # The failing endpoint's delivery of the third old event is replayed (pending again, not worked).
            [replayed] = await rows(
                api,
                "SELECT d.id FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
                " WHERE d.endpoint_id = :ep AND e.customer_id = :c",
                ep=raw_id(failing["endpoint"]["id"]),
                c=raw_id(old[2]["id"]),
            )
            body = await api.gql(admin, REPLAY, {"id": to_global_id("WebhookDelivery", replayed.id)})
            assert ok(body, "replayWebhookDelivery")["delivery"]["status"] == "PENDING"

            aged = [before_endpoints, *old]
            async with api.services.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE events SET occurred_at = now() - interval '40 days' WHERE customer_id = ANY(:ids)"),
                    {"ids": [raw_id(c["id"]) for c in aged]},
                )
                await conn.execute(  # the finished attempts' jobs as old (procrastinate's event times)
                    text(
                        "UPDATE procrastinate_events SET at = now() - interval '40 days' WHERE job_id IN"
                        " (SELECT id FROM procrastinate_jobs WHERE queue_name = :q AND status = 'succeeded')"
                    ),
                    {"q": WEBHOOK_QUEUE},
                )
            counts = "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM webhook_deliveries) AS logs"
            [start] = await rows(api, counts)
            assert (start.events, start.logs) == (5, 8)  # 4 events with two deliveries each

            await api.services.jobs.configure_task("tierwise.event_retention").defer_async(timestamp=0)
            await api.services.jobs.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False)

            [job] = await rows(
                api,
                "SELECT status FROM procrastinate_jobs WHERE task_name = 'tierwise.event_retention'",
            )
            assert job.status == "succeeded"
            left = await rows(
                api,
                "SELECT e.customer_id, array_agg(d.status ORDER BY d.status) FILTER (WHERE d.id IS NOT NULL) AS s"
                " FROM events e LEFT JOIN webhook_deliveries d ON d.event_id = e.id GROUP BY e.customer_id",
            )
            assert {str(r.customer_id): r.s for r in left} == {
                event_of(old[2]): ["delivered", "pending"],  # old, but a delivery is pending: kept whole
                event_of(recent): ["delivered", "failed"],  # recent: kept
            }
            webhook_jobs = await rows(
                api,
                "SELECT status, count(*) AS n FROM procrastinate_jobs WHERE queue_name = :q GROUP BY status",
                q=WEBHOOK_QUEUE,
            )
            assert {r.status: r.n for r in webhook_jobs} == {"todo": 1}  # the replay's; the aged ones are gone

            # The log of the kept events still answers; a second run deletes nothing.
            log = await api.gql(admin, DELIVERIES, {})
            assert len(log["data"]["webhookDeliveries"]["edges"]) == 4
            await api.services.jobs.configure_task("tierwise.event_retention").defer_async(timestamp=1)
            await api.services.jobs.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False)
            [end] = await rows(api, counts)
            assert (end.events, end.logs) == (2, 4)
    finally:
        ok_receiver.stop()
