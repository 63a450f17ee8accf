"""The HTTP edge against abuse and malformed input (issue 17, docs/sec-edge.md), each over HTTP:

- a body that is not UTF-8, and variables nested 100 000 deep or holding too many values, are 400
  BAD_REQUEST with a clear message (they were 500 / INTERNAL), before anything parses them further;
- validation errors are deduplicated and capped;
- a refused document costs ``rate_limit_refusal_cost`` points, so a schema-guessing run meets the
  budget after a few requests;
- failed authentications are limited per client address, answered 429 without a database lookup;
- queries over GET are off in production unless enabled, and mutations over GET always refused;
- in production, validation messages name nothing the document did not contain.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from api.edge.auth import issue_staff_token
from infra.db import StatementCounter
from tests.api.security_helpers import own_database
from tests.conftest import Api, running_api, test_settings

PROD = {
    "environment": "production",
    "jwt_secret": "a-production-secret-of-some-length-0123",
    "encryption_keys": "p1:" + base64.b64encode(b"production-test-encryption-key-1").decode(),
    "blind_index_key": base64.b64encode(b"production-test-blind-index-key!").decode(),
}


@pytest.fixture(scope="module")
async def db_url(template_db: str) -> AsyncIterator[str]:
    async with own_database(template_db) as url:
        yield url


@pytest.fixture(scope="module")
async def dev(db_url: str) -> AsyncIterator[Api]:
    async with running_api(db_url) as api:
        yield api


@pytest.fixture(scope="module")
async def alice(dev: Api) -> str:
    return await dev.user("alice", "admin")


@contextlib.asynccontextmanager
async def app_with(db_url: str, **overrides: Any) -> AsyncIterator[Api]:
    async with running_api(db_url, test_settings(**overrides)) as api:
        yield api


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def bad_request(response: httpx.Response, *phrases: str) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body.get("data") is None
    assert codes(body) == ["BAD_REQUEST"], body
    message: str = body["errors"][0]["message"]
    for phrase in phrases:
        assert phrase in message, message
    return message


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


# ---------------------------------------------------------------- F6: malformed bodies and variables


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ viewer { subject } }", "variables": {"x": "\xff\xfe"}}',
        b'{"query": "{ viewer { subject \xc3\x28 } }"}',
        b"\xff" * 64,
    ],
)
async def test_a_body_that_is_not_utf8_is_a_bad_request(dev: Api, alice: str, body: bytes) -> None:
    response = await dev.client.post("/graphql", content=body, headers=auth(alice))
    bad_request(response, "not valid UTF-8")


async def test_variables_nested_100_000_deep_are_a_bad_request(dev: Api, alice: str) -> None:
    for opening, closing in (("[", "]"), ('{"a":', "}")):
        deep = opening * 100_000 + "1" + closing * 100_000
        body = '{"query": "query($x: JSON) { viewer { subject } }", "variables": {"x": ' + deep + "}}"
        response = await dev.client.post("/graphql", content=body.encode(), headers=auth(alice))
        bad_request(response, "nested", "deep")


async def test_variables_nested_past_the_setting_are_refused_before_graphql(dev: Api, alice: str) -> None:
    limit = dev.settings.max_variables_depth
    inner: Any = "x"
    for _ in range(limit + 1):
        inner = {"a": inner}
    with StatementCounter(dev.services.engine) as counter:
        response = await dev.client.post(
            "/graphql", json={"query": "{ viewer { subject } }", "variables": {"v": inner}}, headers=auth(alice)
        )
    bad_request(response, f"{limit} levels")
    assert counter.statements == []  # refused before the rate limit, the document or a resolver
    inner = "x"
    for _ in range(limit - 1):
        inner = {"a": inner}
    fine = await dev.client.post(
        "/graphql", json={"query": "{ viewer { subject } }", "variables": {"v": inner}}, headers=auth(alice)
    )
    assert fine.status_code == 200, fine.text


async def test_too_many_variable_values_are_a_bad_request(db_url: str) -> None:
    async with app_with(db_url, max_variables_values=1000) as api:
        token = await api.user("alice", "admin")
        many = {"v": [{"a": 1, "b": 2}] * 400}  # 1 201 values
        response = await api.client.post(
            "/graphql", json={"query": "{ viewer { subject } }", "variables": many}, headers=auth(token)
        )
        bad_request(response, "1000 values")
        few = {"v": [{"a": 1, "b": 2}] * 300}
        response = await api.client.post(
            "/graphql", json={"query": "{ viewer { subject } }", "variables": few}, headers=auth(token)
        )
        assert response.status_code == 200, response.text


async def test_deep_variables_over_get_are_a_bad_request_too(dev: Api, alice: str) -> None:
    deep = "[" * 5_000 + "]" * 5_000
    response = await dev.client.get(
        "/graphql",
        params={"query": "{ viewer { subject } }", "variables": '{"x": ' + deep + "}"},
        headers={"Authorization": f"Bearer {alice}"},
    )
    bad_request(response, "nested")


async def test_bodies_that_are_not_one_request_object(dev: Api, alice: str) -> None:
    bad_request(await dev.client.post("/graphql", content=b"not json", headers=auth(alice)), "JSON")
    bad_request(await dev.client.post("/graphql", content=b'"a string"', headers=auth(alice)), "JSON object")
    bad_request(
        await dev.client.post("/graphql", content=b'[{"query": "{ viewer { subject } }"}]', headers=auth(alice)),
        "one operation",
    )
    bad_request(
        await dev.client.post(
            "/graphql", json={"query": "{ viewer { subject } }", "variables": [1]}, headers=auth(alice)
        ),
        "variables",
    )
    bad_request(await dev.client.post("/graphql", json={"query": 5}, headers=auth(alice)), "query")
    bad_request(await dev.client.post("/graphql", json={}, headers=auth(alice)), "No GraphQL query")


# ---------------------------------------------------------------- validation errors


async def test_repeated_unknown_directives_give_one_error(dev: Api, alice: str) -> None:
    query = "{ viewer " + " ".join("@nope" for _ in range(10)) + " { subject } }"
    body = await dev.gql(alice, query)
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"] == "Unknown directive '@nope'."
    duplicated = await dev.gql(alice, "{ viewer @include(if: true) @include(if: true) @include(if: true) { subject } }")
    assert len(duplicated["errors"]) == 1, duplicated


async def test_validation_errors_are_capped(db_url: str) -> None:
    async with app_with(db_url, max_validation_errors=3) as api:
        token = await api.user("alice", "admin")
        query = "{ viewer { " + " ".join(f"unknown{i}" for i in range(40)) + " } }"
        body = await api.gql(token, query)
        assert len(body["errors"]) == 4, body
        assert body["errors"][-1]["message"] == "too many validation errors: only the first 3 are reported"
        assert set(codes(body)) == {"BAD_USER_INPUT"}


# ---------------------------------------------------------------- refused documents spend the budget


async def test_a_schema_guessing_run_meets_the_budget_early(db_url: str) -> None:
    """With the default budget (20 000 points a minute for staff) and the default refusal cost, a
    guessing run is refused with 429 after 200 guesses, not 12 700 later (it used to cost 1 each)."""
    async with app_with(db_url) as api:
        token = await api.user("guesser", "support_agent")
        per_minute = api.settings.rate_limit_user_per_minute
        cost = api.settings.rate_limit_refusal_cost
        assert per_minute // cost <= 200
        statuses = []
        started = time.monotonic()
        for i in range(per_minute // cost + 100):
            response = await api.client.post("/graphql", json={"query": f"{{ guess{i} }}"}, headers=auth(token))
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429, statuses
        refilled = (time.monotonic() - started) * per_minute / 60  # the bucket refills while the run goes on
        assert len(statuses) <= (per_minute + refilled) / cost + 2, (len(statuses), refilled)
        refusal = response.json()
        assert codes(refusal) == ["RATE_LIMITED"]
        assert int(response.headers["retry-after"]) >= 1
        assert "guess" not in response.text  # once the budget is spent, no validation detail either


async def test_refused_documents_cost_the_configured_points(db_url: str) -> None:
    async with app_with(db_url, rate_limit_user_per_minute=1000, rate_limit_refusal_cost=300) as api:
        token = await api.user("payer", "admin")  # a bucket of its own
        for _ in range(3):
            body = await api.gql(token, "{ viewer { nope } }")
            assert codes(body) == ["BAD_USER_INPUT"], body
        viewer = await api.client.post("/graphql", json={"query": "{ viewer { subject } }"}, headers=auth(token))
        assert viewer.status_code == 200, viewer.text
        assert int(viewer.headers["x-ratelimit-remaining"]) < 100 + 5  # 1000 - 3 x 300 - 1, plus a refill
        body = await api.gql(token, "{ viewer { nope } }")  # less than 300 left: drained, and refused
        assert codes(body) == ["RATE_LIMITED"], body
        assert body["_status"] == 429
        over = await api.gql(token, "{ viewer { subject } }")
        assert codes(over) == ["RATE_LIMITED"], over  # the refusal took what was left


async def test_syntax_errors_and_limit_refusals_cost_the_refusal_price(db_url: str) -> None:
    async with app_with(db_url, rate_limit_user_per_minute=250, rate_limit_refusal_cost=100, max_query_cost=50) as api:
        token = await api.user("typist", "admin")  # a bucket of its own: 250 points
        assert codes(await api.gql(token, "{ viewer { ")) == ["BAD_USER_INPUT"]  # 150 left
        too_long = await api.gql(token, "query($s: String) { viewer { subject } }", {"s": "x" * 20_000})
        assert codes(too_long) == ["BAD_USER_INPUT"]  # 50 left
        too_costly = await api.gql(token, "{ customers(first: 100) { edges { node { id } } } }")
        assert codes(too_costly) == ["RATE_LIMITED"]  # the refusal found less than 100: all taken, no detail
        assert "cost" not in str(too_costly["errors"])
        assert codes(await api.gql(token, "{ viewer { subject } }")) == ["RATE_LIMITED"]


# ---------------------------------------------------------------- failed authentication


async def test_failed_authentications_are_limited_per_address(db_url: str) -> None:
    async with app_with(db_url, auth_failure_limit=20, auth_failure_window_s=60) as api:
        forged = [f"tw_pat_{uuid.uuid4().hex}_forged" for _ in range(30)]
        statuses = []
        with StatementCounter(api.services.engine) as counter:
            for token in forged:
                response = await api.client.post(
                    "/graphql", json={"query": "{ viewer { subject } }"}, headers=auth(token)
                )
                statuses.append(response.status_code)
        assert statuses == [401] * 20 + [429] * 10, statuses
        assert len(counter.statements) == 20  # the refused ten asked nothing of the database
        assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        # a valid token from the same address is refused too (the address is what is limited) …
        token = await api.user("alice", "admin")
        same = await api.client.post("/graphql", json={"query": "{ viewer { subject } }"}, headers=auth(token))
        assert same.status_code == 429
        # … but other addresses are not
        transport = httpx.ASGITransport(app=api.app, client=("198.51.100.7", 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://tierwise.test") as other:
            response = await other.post("/graphql", json={"query": "{ viewer { subject } }"}, headers=auth(token))
        assert response.status_code == 200, response.text


async def test_the_address_is_the_one_uvicorns_proxy_headers_give(db_url: str) -> None:
    """`tierwise serve` runs uvicorn with proxy headers on: behind a trusted proxy the client is the
    X-Forwarded-For address; from anywhere else that header is ignored (rotating it does not help)."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    async with app_with(db_url, auth_failure_limit=3) as api:
        behind = ProxyHeadersMiddleware(api.app, trusted_hosts="10.0.0.1")

        async def attempt(proxy: str, forwarded: str) -> int:
            transport = httpx.ASGITransport(app=behind, client=(proxy, 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://tierwise.test") as client:
                headers = {**auth("tw_pat_forged"), "X-Forwarded-For": forwarded}
                response = await client.post("/graphql", json={"query": "{ viewer { subject } }"}, headers=headers)
                return response.status_code

        assert [await attempt("10.0.0.1", "203.0.113.1") for _ in range(4)] == [401, 401, 401, 429]
        assert await attempt("10.0.0.1", "203.0.113.2") == 401  # another client behind the same proxy
        spoofed = [await attempt("192.0.2.9", f"203.0.113.{i}") for i in range(10, 14)]
        assert spoofed == [401, 401, 401, 429]  # not a trusted proxy: its own address counts


async def test_bad_staff_tokens_count_too_and_the_window_ends(db_url: str) -> None:
    async with app_with(db_url, auth_failure_limit=3, auth_failure_window_s=0.5) as api:
        for _ in range(3):
            response = await api.client.post(
                "/graphql", json={"query": "{ viewer { subject } }"}, headers=auth("x.y.z")
            )
            assert response.status_code == 401
        missing = await api.client.post("/graphql", json={"query": "{ viewer { subject } }"})
        assert missing.status_code == 429
        await asyncio.sleep(0.6)
        token = await api.user("alice", "admin")
        ok = await api.client.post("/graphql", json={"query": "{ viewer { subject } }"}, headers=auth(token))
        assert ok.status_code == 200, ok.text


# ---------------------------------------------------------------- GET


COUNT = "{ customers { totalCount } }"
CREATE = 'mutation { createCustomer(input: {name: "Over Get"}) { customer { id } } }'


async def test_get_is_off_in_production_unless_enabled(db_url: str) -> None:
    async with app_with(db_url, **PROD) as prod:
        await prod.user("alice", "admin")
        headers = {"Authorization": f"Bearer {issue_staff_token(prod.settings, 'alice')}"}
        refused = await prod.client.get("/graphql", params={"query": COUNT}, headers=headers)
        assert refused.status_code == 405, refused.text
        assert refused.headers["allow"] == "POST"
        assert codes(refused.json()) == ["BAD_REQUEST"]
        assert "POST" in refused.json()["errors"][0]["message"]
        posted = await prod.client.post("/graphql", json={"query": COUNT}, headers=headers)
        assert posted.status_code == 200
    async with app_with(db_url, **PROD, allow_get_queries=True) as prod:
        headers = {"Authorization": f"Bearer {issue_staff_token(prod.settings, 'alice')}"}
        allowed = await prod.client.get("/graphql", params={"query": COUNT}, headers=headers)
        assert allowed.status_code == 200, allowed.text
        assert "totalCount" in allowed.json()["data"]["customers"]
        mutation = await prod.client.get("/graphql", params={"query": CREATE}, headers=headers)
        assert mutation.status_code in (400, 405), mutation.text
        assert codes(mutation.json()) == ["BAD_REQUEST"]


async def test_get_can_be_switched_off_in_development(db_url: str, alice: str) -> None:
    async with app_with(db_url, allow_get_queries=False) as api:
        token = await api.user("alice", "admin")
        refused = await api.client.get(
            "/graphql", params={"query": COUNT}, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 405


async def test_mutations_over_get_are_refused_in_development(dev: Api, alice: str) -> None:
    response = await dev.client.get("/graphql", params={"query": CREATE}, headers={"Authorization": f"Bearer {alice}"})
    assert response.status_code in (400, 405), response.text
    assert codes(response.json()) == ["BAD_REQUEST"]
    assert "mutations" in response.json()["errors"][0]["message"].lower()
    count = await dev.gql(alice, '{ customers(filter: {nameContains: "Over Get"}) { totalCount } }')
    assert count["data"]["customers"]["totalCount"] == 0


# ---------------------------------------------------------------- validation messages in production


LEAKS = [
    # (document, the schema names its answer must not contain)
    ("{ customers }", ["CustomerConnection"]),
    ("{ customers(first: 1) { edges { node { nope } } } }", ["Customer'", "'Customer"]),
    ("{ viewer { subject { x } } }", ["String"]),
    ("query($f: Int) { customers(filter: $f) { totalCount } }", ["CustomerFilter"]),
]


@pytest.mark.parametrize(("query", "hidden"), LEAKS)
async def test_production_validation_messages_name_only_what_the_document_holds(
    db_url: str, dev: Api, alice: str, query: str, hidden: list[str]
) -> None:
    revealing = await dev.gql(alice, query)
    assert any(name in str(revealing["errors"]) for name in hidden), revealing  # development explains
    async with app_with(db_url, **PROD) as prod:
        await prod.user("alice", "admin")
        body = await prod.gql(issue_staff_token(prod.settings, "alice"), query)
    assert body["errors"], body
    assert codes(body)[0] == "BAD_USER_INPUT"
    text = orjson.dumps(body["errors"]).decode()
    for name in hidden:
        assert name not in text, text
    assert "locations" in body["errors"][0]  # still says where
