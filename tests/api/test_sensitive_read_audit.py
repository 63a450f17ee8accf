"""Audit of sensitive reads (issue 3): a response that carries unmasked sensitive fields writes exactly one
audit row for its request — who, which customers, which fields, the request id sent back in
``X-Request-ID`` — and a response carrying them masked, denied or not at all writes none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.security_helpers import READ_PATHS, World, raw_id, sql, world_on_read_path


@pytest.fixture(scope="module", params=READ_PATHS)
async def world(template_db: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Every test on both read paths: the compiled one and strawberry's."""
    async with world_on_read_path(template_db, request.param) as w:
        yield w


async def post(
    world: World, who: str, query: str, variables: dict[str, Any] | None = None, **headers: str
) -> tuple[dict[str, Any], str]:
    """The body and the X-Request-ID response header of one request."""
    response = await world.api.client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {world.tokens[who]}", **headers},
    )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert request_id
    return response.json(), request_id


async def audit_rows(world: World, request_id: str) -> list[dict[str, Any]]:
    rows = await sql(
        world.url, "SELECT * FROM audit_log WHERE action = 'sensitive_read' AND request_id = $1", request_id
    )
    return [dict(r) for r in rows]


async def sensitive_read_count(world: World) -> int:
    return int((await sql(world.url, "SELECT count(*) AS n FROM audit_log WHERE action = 'sensitive_read'"))[0]["n"])


async def test_admin_reading_phones_writes_one_audit_row_for_the_request(world: World) -> None:
    before = await sensitive_read_count(world)
    body, request_id = await post(world, "admin", "{ customers(first: 50) { edges { node { id name phone } } } }")
    nodes = [e["node"] for e in body["data"]["customers"]["edges"]]
    assert len(nodes) == 3
    assert all(n["phone"].startswith("+49") for n in nodes)
    (row,) = await audit_rows(world, request_id)
    assert row["actor"] == "user:alice"
    assert row["action"] == "sensitive_read"
    assert row["target_type"] == "Customer"
    assert sorted(row["target_ids"]) == sorted(str(raw_id(n["id"])) for n in nodes)
    assert "Customer.phone" in row["fields"]
    assert "Customer.name" not in row["fields"]  # internal, not sensitive
    assert await sensitive_read_count(world) == before + 1


async def test_the_request_id_given_by_the_client_is_the_one_audited(world: World) -> None:
    body, request_id = await post(
        world,
        "admin",
        "query($id: ID!) { customer(id: $id) { email nationalId } }",
        {"id": world.ada},
        **{"X-Request-ID": "audit-probe-0001"},
    )
    assert request_id == "audit-probe-0001"
    assert body["data"]["customer"]["nationalId"]
    (row,) = await audit_rows(world, "audit-probe-0001")
    assert row["target_ids"] == [str(raw_id(world.ada))]
    assert sorted(row["fields"]) == ["Customer.email", "Customer.nationalId"]


async def test_a_nested_path_is_audited_too(world: World) -> None:
    body, request_id = await post(
        world,
        "admin",
        "query($id: ID!) { complaint(id: $id) { description customer { phone } } }",
        {"id": world.ada_complaint},
    )
    assert body["data"]["complaint"]["customer"]["phone"]
    (row,) = await audit_rows(world, request_id)
    assert row["actor"] == "user:alice"
    assert row["target_ids"] == [str(raw_id(world.ada))]
    assert sorted(row["fields"]) == ["Complaint.description", "Customer.phone"]


async def test_a_masked_read_writes_no_audit_row(world: World) -> None:
    before = await sensitive_read_count(world)
    body, request_id = await post(
        world, "support_agent", "{ customers(first: 50) { edges { node { id phone email birthDate } } } }"
    )
    assert all("*" in e["node"]["phone"] for e in body["data"]["customers"]["edges"])
    assert await audit_rows(world, request_id) == []
    assert await sensitive_read_count(world) == before


async def test_a_denied_read_writes_no_audit_row(world: World) -> None:
    before = await sensitive_read_count(world)
    body, request_id = await post(
        world, "partner", "{ customers(first: 50) { edges { node { id phone nationalId } } } }"
    )
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN_FIELD"}
    assert await audit_rows(world, request_id) == []
    assert await sensitive_read_count(world) == before


async def test_a_query_without_sensitive_fields_writes_no_audit_row(world: World) -> None:
    before = await sensitive_read_count(world)
    body, request_id = await post(
        world, "admin", "{ customers(first: 50) { edges { node { id name tier { code } metrics { orders12m } } } } }"
    )
    assert len(body["data"]["customers"]["edges"]) == 3
    assert await audit_rows(world, request_id) == []
    assert await sensitive_read_count(world) == before


async def test_full_free_text_is_audited_whoever_reads_it(world: World) -> None:
    body, request_id = await post(
        world, "support_agent", "query($id: ID!) { complaint(id: $id) { description } }", {"id": world.ada_complaint}
    )
    assert body["data"]["complaint"]["description"]
    (row,) = await audit_rows(world, request_id)
    assert row["actor"] == "user:bob"
    assert row["fields"] == ["Complaint.description"]
    assert row["target_ids"] == [str(raw_id(world.ada))]
