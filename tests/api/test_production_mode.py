"""Production mode over HTTP (issue 6, part 2): no introspection, no "Did you mean …" suggestions, no
GraphiQL, no mutations over GET, no form / multipart / text-plain POSTs (CSRF), unexpected errors
masked to INTERNAL with a request id — while expected errors keep their codes. Each refusal is
checked against the same request in development, where it is allowed (so none is vacuous)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.edge.auth import issue_staff_token
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
async def prod(db_url: str) -> AsyncIterator[Api]:
    async with running_api(db_url, test_settings(**PROD)) as api:
        yield api


@pytest.fixture(scope="module")
async def dev(db_url: str) -> AsyncIterator[Api]:
    async with running_api(db_url) as api:
        yield api


@pytest.fixture(scope="module")
async def tokens(prod: Api, dev: Api) -> dict[str, str]:
    await prod.user("alice", "admin")
    await prod.user("bob", "support_agent")
    await dev.services.authz.reload()
    return {
        "prod": issue_staff_token(prod.settings, "alice"),
        "dev": issue_staff_token(dev.settings, "alice"),
        "prod_bob": issue_staff_token(prod.settings, "bob"),
    }


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


INTROSPECTION = [
    "{ __schema { types { name } } }",
    '{ __type(name: "Customer") { fields { name } } }',
    "query { viewer { subject } __schema { queryType { name } } }",
]


@pytest.mark.parametrize("query", INTROSPECTION)
async def test_no_introspection_in_production(prod: Api, dev: Api, tokens: dict[str, str], query: str) -> None:
    body = await prod.gql(tokens["prod"], query)
    assert body.get("data") is None, body
    assert "introspection" in body["errors"][0]["message"].lower()
    allowed = await dev.gql(tokens["dev"], query)
    assert not allowed.get("errors"), allowed


async def test_typename_is_not_introspection(prod: Api, tokens: dict[str, str]) -> None:
    body = await prod.gql(tokens["prod"], "{ viewer { __typename subject } }")
    assert body["data"]["viewer"] == {"__typename": "Viewer", "subject": "user:alice"}


SUGGESTIONS: list[tuple[str, dict[str, Any] | None]] = [
    ("{ viewer { subjec } }", None),  # field
    ("{ customers(frist: 1) { totalCount } }", None),  # argument
    ("{ customers(orderBy: NAM) { totalCount } }", None),  # enum value
    ("query($o: CustomerOrder!) { customers(orderBy: $o) { totalCount } }", {"o": "NAM"}),  # enum in a variable
    ("query($f: CustomerFilter) { customers(filter: $f) { totalCount } }", {"f": {"emial": "x"}}),  # input field
    ("query($f: CustomerFiltr) { customers(filter: $f) { totalCount } }", None),  # type
]


@pytest.mark.parametrize(("query", "variables"), SUGGESTIONS)
async def test_no_suggestions_in_production(
    prod: Api, dev: Api, tokens: dict[str, str], query: str, variables: dict[str, Any] | None
) -> None:
    helpful = await dev.gql(tokens["dev"], query, variables)
    assert "Did you mean" in str(helpful), helpful  # development helps
    body = await prod.gql(tokens["prod"], query, variables)
    assert body["errors"], body
    assert "Did you mean" not in str(body), body
    assert set(codes(body)) == {"BAD_USER_INPUT"}


async def test_no_graphiql_in_production(prod: Api, dev: Api) -> None:
    assert "GraphiQL" in (await dev.client.get("/graphql", headers={"Accept": "text/html"})).text
    page = await prod.client.get("/graphql", headers={"Accept": "text/html"})
    assert "GraphiQL" not in page.text
    assert page.status_code == 405  # GET is off in production (issue 17): refused before authentication


CREATE = 'mutation { createCustomer(input: {name: "Get Mutated"}) { customer { id } } }'
COUNT = '{ customers(filter: {nameContains: "Get Mutated"}) { totalCount } }'


async def test_no_mutations_over_get(prod: Api, db_url: str, tokens: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {tokens['prod']}"}
    response = await prod.client.get("/graphql", params={"query": CREATE}, headers=auth)
    assert response.status_code in (400, 405), response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # queries over GET are off in production unless enabled (issue 17); enabled, mutations stay refused
    assert (await prod.client.get("/graphql", params={"query": COUNT}, headers=auth)).status_code == 405
    async with running_api(db_url, test_settings(**PROD, allow_get_queries=True)) as with_get:
        response = await with_get.client.get("/graphql", params={"query": CREATE}, headers=auth)
        assert response.status_code in (400, 405), response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        ok = await with_get.client.get("/graphql", params={"query": COUNT}, headers=auth)
        assert ok.status_code == 200
        assert ok.json()["data"]["customers"]["totalCount"] == 0


CSRF_BODIES = {
    "form": ("application/x-www-form-urlencoded", f"query={CREATE}".encode()),
    "multipart": (
        "multipart/form-data; boundary=XyZ",
        f'--XyZ\r\nContent-Disposition: form-data; name="query"\r\n\r\n{CREATE}\r\n--XyZ--\r\n'.encode(),
    ),
    "text/plain": ("text/plain", b'{"query": "' + CREATE.replace('"', '\\"').encode() + b'"}'),
    "no content type": ("", b'{"query": "' + CREATE.replace('"', '\\"').encode() + b'"}'),
}


@pytest.mark.parametrize("kind", list(CSRF_BODIES))
async def test_only_json_posts_are_accepted(prod: Api, tokens: dict[str, str], kind: str) -> None:
    content_type, payload = CSRF_BODIES[kind]
    headers = {"Authorization": f"Bearer {tokens['prod']}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = await prod.client.post("/graphql", content=payload, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert (await prod.gql(tokens["prod"], COUNT))["data"]["customers"]["totalCount"] == 0


async def test_unexpected_errors_are_masked_with_a_request_id(
    prod: Api, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.usecases import customers as usecases

    async def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(
            'relation "customers_secret" failed at /srv/tierwise/infra/repos/customers.py password=hunter2'
        )

    def boom_sql(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError('relation "customers_secret" failed at /srv/tierwise/infra/readsql.py password=hunter2')

    from infra import readsql

    monkeypatch.setattr(usecases, "customer_page", boom)  # strawberry's path
    monkeypatch.setattr(readsql.Builder, "list_root", boom_sql)  # the read compiler's (what production runs)
    response = await prod.client.post(
        "/graphql",
        json={"query": "{ customers { totalCount } }"},
        headers={"Authorization": f"Bearer {tokens['prod']}", "X-Request-ID": "req-masked-1"},
    )
    body = response.json()
    assert codes(body) == ["INTERNAL"]
    assert body["errors"][0]["message"] == "internal error (request id req-masked-1)"
    for leak in ("hunter2", "customers_secret", "/srv/", "RuntimeError", "Traceback"):
        assert leak not in response.text


async def test_expected_errors_keep_their_codes(prod: Api, tokens: dict[str, str]) -> None:
    created = await prod.gql(
        tokens["prod"],
        'mutation { createCustomer(input: {name: "Kept Codes", nationalId: "AB123456C"}) { customer { id } } }',
    )
    customer_id = created["data"]["createCustomer"]["customer"]["id"]
    denied = await prod.gql(
        tokens["prod_bob"], "query($id: ID!) { customer(id: $id) { name nationalId } }", {"id": customer_id}
    )
    assert codes(denied) == ["FORBIDDEN_FIELD"]
    assert denied["data"]["customer"]["name"] == "Kept Codes"
    forbidden = await prod.gql(tokens["prod_bob"], "{ roles { name } }")
    assert codes(forbidden) == ["FORBIDDEN"]
    missing = await prod.gql(
        tokens["prod"], 'query { customer(id: "Q3VzdG9tZXI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw") { id } }'
    )
    assert codes(missing) == ["NOT_FOUND"]
    bad = await prod.gql(tokens["prod"], "{ customers(first: 0) { totalCount } }")
    assert codes(bad) == ["BAD_USER_INPUT"]
    invalid = await prod.gql(tokens["prod"], 'mutation { createCustomer(input: {name: "  "}) { userErrors { code } } }')
    assert invalid["data"]["createCustomer"]["userErrors"][0]["code"]
    unauthenticated = await prod.client.post("/graphql", json={"query": "{ viewer { subject } }"})
    assert unauthenticated.status_code == 401
