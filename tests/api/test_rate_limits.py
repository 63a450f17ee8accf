"""Rate limits (issue 6, part 3): per partner token and per staff user, counted in operations' cost
points (not HTTP requests), answered with RATE_LIMITED, HTTP 429, a Retry-After header and
extensions.retryAfter; buckets live in PostgreSQL so every instance shares them; an admin sets a
token's limit at runtime."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from api.edge.auth import issue_staff_token
from tests.api.security_helpers import own_database
from tests.conftest import Api, running_api, test_settings

VIEWER = "{ viewer { subject } }"  # costs 1 point
LIMITS = {"rate_limit_user_per_minute": 5, "rate_limit_partner_per_minute": 4}


@contextlib.asynccontextmanager
async def limited_api(template_db: str, **overrides: Any) -> AsyncIterator[Api]:
    async with own_database(template_db) as url, running_api(url, test_settings(**{**LIMITS, **overrides})) as api:
        yield api


@pytest.fixture
async def api(template_db: str) -> AsyncIterator[Api]:
    async with limited_api(template_db) as running:
        yield running


async def post(api: Api, token: str, query: str = VIEWER, variables: dict[str, Any] | None = None) -> Any:
    return await api.client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {token}"}
    )


def assert_limited(response: Any) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body.get("data") is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60
    assert error["extensions"]["retryAfter"] == retry
    return retry


async def test_a_partner_token_gets_its_budget_then_rate_limited(api: Api) -> None:
    token, _ = await api.partner_token()
    for i in range(LIMITS["rate_limit_partner_per_minute"]):
        response = await post(api, token)
        assert response.status_code == 200, response.text
        assert response.headers["x-ratelimit-remaining"] == str(3 - i)
    retry = assert_limited(await post(api, token))
    assert retry == 15  # 4 points a minute: one point comes back every 15 s
    # remembered at the edge: refused again without parsing or SQL
    assert_limited(
        await api.client.post(
            "/graphql",
            content=b"not even json",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    )
    other, _ = await api.partner_token("Southwind Traders")
    assert (await post(api, other)).status_code == 200  # buckets are per token


async def test_operations_are_charged_their_cost_not_per_request(api: Api) -> None:
    admin = await api.user("alice", "admin")  # 5 points a minute
    query = "{ customers(first: 2) { edges { node { id } } } }"  # 1 + 2 x (1 + 1) = 5 points
    first = await post(api, admin, query)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-remaining"] == "0"
    assert_limited(await post(api, admin))  # one HTTP request so far, but the budget is spent


async def test_staff_users_have_their_own_buckets(api: Api) -> None:
    alice = await api.user("alice", "admin")
    bob = await api.user("bob", "support_agent")
    for _ in range(5):
        assert (await post(api, alice)).status_code == 200
    assert_limited(await post(api, alice))
    assert (await post(api, bob)).status_code == 200


async def test_invalid_operations_spend_the_budget_too(template_db: str) -> None:
    # at one point per refusal here; the default price of a refusal is tested in test_http_edge.py
    async with limited_api(template_db, rate_limit_refusal_cost=1) as api:
        alice = await api.user("alice", "admin")
        for _ in range(5):
            body = (await post(api, alice, "{ viewer { nope } }")).json()
            assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert_limited(await post(api, alice))


async def test_the_budget_is_shared_by_every_instance(template_db: str) -> None:
    async with (
        own_database(template_db) as url,
        running_api(url, test_settings(**LIMITS)) as one,
        running_api(url, test_settings(**LIMITS)) as two,
    ):
        token, _ = await one.partner_token()
        for api in (one, two, one, two):
            assert (await post(api, token)).status_code == 200
        assert_limited(await post(two, token))
        assert_limited(await post(one, token))


async def test_concurrent_charges_are_exact_and_the_bucket_refills(template_db: str) -> None:
    async with limited_api(template_db, rate_limit_user_per_minute=60) as api:  # a point comes back each second
        alice = await api.user("alice", "admin")
        started = time.perf_counter()
        responses = await asyncio.gather(*(post(api, alice) for _ in range(70)))
        elapsed = time.perf_counter() - started
        statuses = [r.status_code for r in responses]
        # atomic charges: exactly the budget (plus what refilled while the burst ran), never more
        assert 60 <= statuses.count(200) <= 60 + int(elapsed) + 1, (statuses.count(200), elapsed)
        refused = [r for r in responses if r.status_code != 200]
        assert refused
        assert all(assert_limited(r) == 1 for r in refused)
        await asyncio.sleep(1.1)
        assert (await post(api, alice)).status_code == 200


SET_LIMIT = """mutation($id: ID!, $n: Int) { setPartnerTokenRateLimit(id: $id, perMinute: $n) {
  apiToken { id rateLimitPerMinute } userErrors { field code message } } }"""


async def test_an_admin_sets_a_tokens_limit_at_runtime(template_db: str) -> None:
    settings = {**LIMITS, "rate_limit_user_per_minute": 1000}
    async with (
        own_database(template_db) as url,
        running_api(url, test_settings(**settings)) as one,
        running_api(url, test_settings(**settings)) as two,
    ):
        admin = issue_staff_token(one.settings, "alice")
        await one.user("alice", "admin")
        await two.services.authz.reload()
        token, _ = await one.partner_token()
        token_id = token.removeprefix("tw_pat_").split("_", 1)[0]
        gid = str(uuid.UUID(hex=token_id))

        body = (await post(one, admin, SET_LIMIT, {"id": gid, "n": 2})).json()
        assert body["data"]["setPartnerTokenRateLimit"] == {
            "apiToken": {"id": gid, "rateLimitPerMinute": 2},
            "userErrors": [],
        }
        assert (await post(two, token)).status_code == 200
        assert (await post(two, token)).status_code == 200
        assert_limited(await post(two, token))  # the other instance applied the new limit at once
        assert_limited(await post(one, token))

        body = (await post(one, admin, SET_LIMIT, {"id": gid, "n": 1000})).json()
        assert body["data"]["setPartnerTokenRateLimit"]["apiToken"]["rateLimitPerMinute"] == 1000
        # a new limit starts with a full bucket: at once here, within a second on other instances
        # (they remember a refusal for at most a second, to refuse floods without SQL)
        assert (await post(one, token)).status_code == 200
        for _ in range(30):
            if (await post(two, token)).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the other instance kept refusing the token after its limit was raised")
        # partners can't raise their own limit
        partner = (await post(one, token, SET_LIMIT, {"id": gid, "n": 100000})).json()
        assert partner["errors"][0]["extensions"]["code"] == "FORBIDDEN", partner

        for bad in (0, -5):
            errors = (await post(one, admin, SET_LIMIT, {"id": gid, "n": bad})).json()
            assert errors["data"]["setPartnerTokenRateLimit"]["userErrors"][0]["field"] == "perMinute"
        unknown = (await post(one, admin, SET_LIMIT, {"id": "00000000-0000-0000-0000-000000000000", "n": 5})).json()
        assert unknown["data"]["setPartnerTokenRateLimit"]["userErrors"][0]["code"] == "NOT_FOUND"
        # back to the default with null
        reset = (await post(one, admin, SET_LIMIT, {"id": gid, "n": None})).json()
        assert reset["data"]["setPartnerTokenRateLimit"]["apiToken"]["rateLimitPerMinute"] is None

        async with one.services.engine.connect() as conn:
            audit = (
                await conn.execute(
                    text("SELECT actor, before, after FROM audit_log WHERE action = 'token.rate_limit' ORDER BY id")
                )
            ).all()
        assert [(a.actor, a.before, a.after) for a in audit][:2] == [
            ("user:alice", {"rateLimitPerMinute": None}, {"rateLimitPerMinute": 2}),
            ("user:alice", {"rateLimitPerMinute": 2}, {"rateLimitPerMinute": 1000}),
        ]
