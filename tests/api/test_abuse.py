"""Abuse limits, each sent over HTTP (issue 6, part 1): depth, aliases, tokens, comments, directives
and estimated cost are refused with QUERY_TOO_COMPLEX before any resolver runs (no SQL but the
rate-limit charge); oversized bodies get 413; batches are off; `first` is capped; input strings with
NUL characters or over the length limit are refused before SQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infra.db import StatementCounter
from tests.api.helpers import module_api
from tests.conftest import Api


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


@pytest.fixture(scope="module")
async def admin(api: Api) -> str:
    token = await api.user("alice", "admin")
    for name in ("Ann Lee", "Bo Chen"):
        body = await api.gql(
            token, "mutation($n: String!) { createCustomer(input: {name: $n}) { customer { id } } }", {"n": name}
        )
        assert body["data"]["createCustomer"]["customer"], body
    return token


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def refused_before_sql(
    api: Api, token: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send ``query``; assert QUERY_TOO_COMPLEX, no data, and no SQL but the rate-limit charge."""
    with StatementCounter(api.services.engine) as counter:
        body = await api.gql(token, query, variables)
    assert "QUERY_TOO_COMPLEX" in codes(body), body
    assert body.get("data") is None, body
    assert all("rate_limit_buckets" in s for s in counter.statements), counter.statements
    return body


def nested(levels: int) -> str:
    """customers → complaints → customer → complaints …: a leaf under ``levels``-ish object fields."""
    inner = "id"
    for _ in range(levels):
        inner = f"complaints(first: 1) {{ edges {{ node {{ customer {{ {inner} }} }} }} }}"
    return f"{{ customers(first: 1) {{ edges {{ node {{ {inner} }} }} }} }}"


async def test_depth_over_the_limit_is_refused_before_execution(api: Api, admin: str) -> None:
    body = await refused_before_sql(api, admin, nested(4))  # depth 3 + 4 x 4 = 19 > 12
    assert "depth" in body["errors"][0]["message"]


async def test_a_query_within_the_depth_limit_runs(api: Api, admin: str) -> None:
    body = await api.gql(admin, nested(2))  # depth 11
    assert not body.get("errors"), body
    assert body["data"]["customers"]["edges"]


async def test_fragment_fan_out_is_checked_in_linear_time(api: Api, admin: str) -> None:
    # each fragment spreads the previous one twice: 2^24 paths in ~100 tokens. Validators that walk
    # every path (strawberry's depth and alias limiters) spin for minutes on this.
    n = 24
    fragments = ["fragment F0 on Viewer { subject }"] + [
        f"fragment F{i} on Viewer {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, n + 1)
    ]
    query = f"{{ viewer {{ ...F{n} }} }} " + " ".join(fragments)
    started = time.perf_counter()
    body = await api.gql(admin, query)
    assert time.perf_counter() - started < 2.0
    assert body["data"]["viewer"]["subject"] == "user:alice", body


async def test_too_many_aliases(api: Api, admin: str) -> None:
    limit = api.settings.max_aliases
    fields = " ".join(f"a{i}: viewer {{ subject }}" for i in range(limit + 1))
    body = await refused_before_sql(api, admin, f"{{ {fields} }}")
    assert "aliases" in body["errors"][0]["message"]
    fields = " ".join(f"a{i}: viewer {{ subject }}" for i in range(limit))
    assert not (await api.gql(admin, f"{{ {fields} }}")).get("errors")


async def test_too_many_tokens(api: Api, admin: str) -> None:
    filler = " ".join(["subject"] * api.settings.max_tokens)
    body = await refused_before_sql(api, admin, f"{{ viewer {{ {filler} }} }}")
    assert "tokens" in body["errors"][0]["message"]


async def test_too_many_comments(api: Api, admin: str) -> None:
    comments = "#\n" * (api.settings.max_tokens + 1)
    await refused_before_sql(api, admin, f"{comments}{{ viewer {{ subject }} }}")


async def test_too_many_directives(api: Api, admin: str) -> None:
    limit = api.settings.max_directives
    fields = " ".join(["subject @include(if: true)"] * (limit + 1))
    body = await refused_before_sql(api, admin, f"{{ viewer {{ {fields} }} }}")
    assert "directives" in body["errors"][0]["message"]


COST_QUERY = """query Heavy($n: Int!, $m: Int!) {
  customers(first: $n) { edges { node { name complaints(first: $m) { edges { node { id subject } } } } } }
}"""


async def test_list_sizes_multiply_into_the_cost(api: Api, admin: str) -> None:
    body = await refused_before_sql(api, admin, COST_QUERY, {"n": 100, "m": 100})
    error = body["errors"][0]
    assert error["extensions"]["cost"] > error["extensions"]["maxCost"] == api.settings.max_query_cost
    # the same shape with small pages is cheap and runs
    small = await api.gql(admin, COST_QUERY, {"n": 5, "m": 5})
    assert not small.get("errors"), small
    assert small["data"]["customers"]["edges"]


async def test_cost_counts_literal_pages_and_default_page_sizes(api: Api, admin: str) -> None:
    query = "{ customers(first: 100) { edges { node { complaints(first: 100) { edges { node { id } } } } } } }"
    await refused_before_sql(api, admin, query)
    # without `first`, the schema's default page sizes (20 and 10) apply: 1 + 20 x (3 + 10 x 2) = 461
    ok = await api.gql(admin, "{ customers { edges { node { complaints { edges { node { id } } } } } } }")
    assert not ok.get("errors"), ok


async def test_first_is_capped(api: Api, admin: str) -> None:
    body = await api.gql(admin, "{ customers(first: 101) { totalCount } }")
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "first must be between 1 and 100" in body["errors"][0]["message"]


async def test_a_body_over_the_limit_is_refused_with_413(api: Api, admin: str) -> None:
    padding = "x" * (api.settings.max_body_bytes + 1)
    response = await api.client.post(
        "/graphql",
        json={"query": "{ viewer { subject } }", "variables": {"pad": padding}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers["x-request-id"]


async def test_a_chunked_body_over_the_limit_is_refused_with_413(api: Api, admin: str) -> None:
    chunk = b"x" * 65536
    count = api.settings.max_body_bytes // len(chunk) + 2

    async def body() -> AsyncIterator[bytes]:
        yield b'{"query": "{ viewer { subject } }", "variables": {"pad": "'
        for _ in range(count):
            yield chunk
        yield b'"}}'

    response = await api.client.post(
        "/graphql",
        content=body(),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_batches_are_refused_and_run_nothing(api: Api, admin: str) -> None:
    batch = [
        {"query": "{ viewer { subject } }"},
        {"query": 'mutation { createCustomer(input: {name: "Batched Betty"}) { customer { id } } }'},
    ]
    response = await api.client.post("/graphql", json=batch, headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    found = await api.gql(admin, '{ customers(filter: {nameContains: "Batched"}) { totalCount } }')
    assert found["data"]["customers"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("mutation($n: String!) { createCustomer(input: {name: $n}) { customer { id } } }", {"n": "Nul\x00Byte"}),
        ('mutation { createCustomer(input: {name: "Nul\\u0000Byte"}) { customer { id } } }', None),
        ("mutation($n: String!) { createCustomer(input: {name: $n}) { customer { id } } }", {"n": "y" * 10_001}),
        ('{ customers(filter: {nameContains: "' + "z" * 10_001 + '"}) { totalCount } }', None),
    ],
    ids=["NUL in a variable", "NUL in a literal", "long variable", "long literal"],
)
async def test_bad_strings_are_refused_before_sql(
    api: Api, admin: str, query: str, variables: dict[str, Any] | None
) -> None:
    for _ in range(2):  # the second time from the document cache and the literal check's memo
        with StatementCounter(api.services.engine) as counter:
            body = await api.gql(admin, query, variables)
        assert codes(body) == ["BAD_USER_INPUT"], body
        assert body["data"] is None
        assert all("rate_limit_buckets" in s for s in counter.statements), counter.statements
