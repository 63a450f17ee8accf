"""GraphQL subscriptions over a real WebSocket (graphql-transport-ws) on two real app instances (uvicorn on
loopback, one database): an event caused through one instance reaches a subscriber of the other within a
second; authenticated like HTTP (the bearer token in connection_init's payload); a partner hears of its
own customers only; field decisions and document limits apply as to queries; only subscriptions run over
the socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from api.edge.app import Services, create_app
from api.edge.auth import issue_staff_token
from api.usecases.access import new_partner_token
from authz import admin
from infra.repos.base import Scope
from tests.conftest import test_settings

SUBSCRIBE = "subscription($types: [EventType!]) { events(types: $types) { id type occurredAt customerId data } }"
CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
    customer { id } userErrors { code message } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    app: Any
    port: int

    @property
    def services(self) -> Services:
        return self.app.state.services["services"]  # type: ignore[no-any-return]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def gql(self, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            r = await client.post(
                "/graphql",
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {token}"},
            )
            body: dict[str, Any] = r.json()
            return body

    async def user(self, sub: str, *roles: str) -> str:
        async with self.services.engine.connect() as conn:
            for role in roles:
                with contextlib.suppress(Exception):
                    await admin.assign_role(conn, sub, role, actor="test")
            await conn.commit()
        await self.services.authz.reload()
        return issue_staff_token(self.services.settings, sub)

    async def partner_token(self, partner: str) -> str:
        token_id, token, token_hash = new_partner_token()
        async with self.services.engine.connect() as conn:
            await admin.create_partner_token(
                conn,
                partner_name=partner,
                name="ws test",
                scopes=["read:*", "write:*"],
                role="partner",
                actor="test",
                token_id=token_id,
                token_hash=token_hash,
                expires_at=None,
            )
            await conn.commit()
        return token


@contextlib.asynccontextmanager
async def serve(url: str, **settings: Any) -> AsyncIterator[Instance]:
    """A real instance: uvicorn on a loopback port, its lifespan (policy, LISTEN, jobs) started."""
    port = _free_port()
    settings = {"db_pool_size": 3, "db_max_overflow": 2, **settings}  # the machine's PostgreSQL is shared
    app = create_app(test_settings(**settings), database_url=url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the instance did not start"
        await asyncio.sleep(0.05)
    try:
        yield Instance(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@contextlib.asynccontextmanager
async def connected(instance: Instance, token: str | None) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(instance.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        yield ws


async def ack(ws: ClientConnection) -> None:
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "connection_ack", message


async def subscribe(ws: ClientConnection, op: str = "1", types: list[str] | None = None) -> None:
    await ws.send(
        json.dumps({"id": op, "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": {"types": types}}})
    )


async def next_message(ws: ClientConnection, within: float) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
        if message["type"] not in ("ping", "complete"):
            return message


async def nothing_within(ws: ClientConnection, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        message = await next_message(ws, seconds)
        raise AssertionError(f"unexpected message {message}")


async def settled(instance: Instance, ws: ClientConnection) -> None:
    """The subscription is registered once the stream is open: give the operation a moment to start."""
    await asyncio.sleep(0.3)


async def test_an_event_on_one_instance_reaches_a_subscriber_of_the_other_within_a_second(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database_url()
    async with serve(url) as one, serve(url) as two:
        token = await one.user("alice", "admin")
        await two.services.authz.reload()
        async with connected(one, token) as ws:
            await ack(ws)
            await subscribe(ws, types=["TIER_CHANGED"])
            await settled(one, ws)
            started = time.monotonic()
            made = await two.gql(token, CREATE, {"input": {"name": "Ws Person"}})
            customer = made["data"]["createCustomer"]["customer"]["id"]
            message = await next_message(ws, 1.0)
            elapsed = time.monotonic() - started
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            event = message["payload"]["data"]["events"]
            assert event["type"] == "TIER_CHANGED"
            assert event["customerId"] == customer
            assert event["data"]["toTier"] == "bronze"
            assert elapsed < 1.0, elapsed
            await ws.send(json.dumps({"id": "1", "type": "complete"}))


async def test_a_partner_hears_only_of_its_own_customers(fresh_database_url: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database_url()
    async with serve(url) as one, serve(url) as two:
        token_a = await one.partner_token("Shop A")
        token_b = await one.partner_token("Shop B")
        staff = await one.user("alice", "admin")
        async with connected(one, token_a) as a, connected(two, staff) as s:
            await ack(a)
            await ack(s)
            await subscribe(a)
            await subscribe(s, types=["TIER_CHANGED"])
            await settled(one, a)
            other = await two.gql(token_b, CREATE, {"input": {"name": "Other Person", "externalRef": "b-1"}})
            mine = await two.gql(token_a, CREATE, {"input": {"name": "Own Person", "externalRef": "a-1"}})
            other_id = other["data"]["createCustomer"]["customer"]["id"]
            mine_id = mine["data"]["createCustomer"]["customer"]["id"]
            heard = await next_message(a, 5)
            assert heard["payload"]["data"]["events"]["customerId"] == mine_id
            await nothing_within(a, 1.0)  # never the other partner's
            staff_heard = [(await next_message(s, 5))["payload"]["data"]["events"]["customerId"] for _ in range(2)]
            assert staff_heard == [other_id, mine_id]


def codes_of(message: dict[str, Any]) -> list[str]:
    """The error codes of an ``error`` message (a list of errors) or a ``next`` message with errors."""
    payload = message.get("payload")
    errors = payload if isinstance(payload, list) else (payload or {}).get("errors") or []
    return [e.get("extensions", {}).get("code") for e in errors]


async def test_subscriptions_are_authenticated_guarded_and_limited(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database_url()
    async with serve(url, max_aliases=2) as one:
        # no token, or a bad one: the connection is closed (4403) before anything runs
        for token in (None, "tw_pat_0123_forged", "x.y.z"):
            async with connected(one, token) as ws:
                with contextlib.suppress(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                assert ws.close_code == 4403, token
        # a role without the grant of Subscription.events: refused as an operation is
        agent = await one.user("bob", "support_agent")
        async with connected(one, agent) as ws:
            await ack(ws)
            await subscribe(ws)
            assert codes_of(await next_message(ws, 5)) == ["FORBIDDEN"]
        partner = await one.partner_token("Shop A")
        async with connected(one, partner) as ws:
            await ack(ws)
            # what the partner role can't read (churn risk) it can't subscribe to
            await subscribe(ws, "churn", ["CHURN_RISK_RAISED"])
            assert codes_of(await next_message(ws, 5)) == ["FORBIDDEN"]
            # queries and mutations go over HTTP
            await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ viewer { subject } }"}}))
            answer = await next_message(ws, 5)
            assert codes_of(answer) == ["BAD_REQUEST"], answer
            # the document limits of queries hold: at most 2 aliases here
            many = "subscription { events { a: id b: id c: id } }"
            await ws.send(json.dumps({"id": "x", "type": "subscribe", "payload": {"query": many}}))
            refused = await next_message(ws, 5)
            assert refused["id"] == "x", refused
            assert codes_of(refused) == ["QUERY_TOO_COMPLEX"], refused


async def test_a_revoked_token_loses_its_subscription(fresh_database_url: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database_url()
    async with serve(url, subscription_reauth_s=0.3) as one:
        token = await one.partner_token("Shop A")
        token_id = uuid.UUID(hex=token.removeprefix("tw_pat_").partition("_")[0])
        async with connected(one, token) as ws:
            await ack(ws)
            await subscribe(ws, types=["TIER_CHANGED"])
            await asyncio.sleep(0.8)
            assert ws.close_code is None  # still valid: still open
            async with one.services.engine.begin() as conn:
                await admin.revoke_partner_token(conn, token_id, actor="test", scope=Scope())
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4403
