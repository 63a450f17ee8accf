"""Runtime administration: changes are audited, apply at once, and reach a second instance through
LISTEN/NOTIFY within a second, without restart."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import Api, running_api

CUSTOMER = 'mutation { createCustomer(input: {name: "Ann Lee", phone: "+4930123456"}) { customer { id } } }'


async def _wait_until(check, limit_s: float = 1.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > limit_s:
            raise AssertionError(f"not within {limit_s}s")
        await asyncio.sleep(0.02)


async def test_role_revoked_at_runtime_reaches_a_second_instance_within_a_second(api: Api) -> None:
    admin = await api.user("alice", "admin")
    bob = await api.user("bob", "support_agent")
    await api.gql(admin, CUSTOMER)
    async with running_api(api.url, api.settings) as second:
        query = "{ customers(first: 1) { edges { node { name } } } }"
        before = await second.gql(bob, query)
        assert before["data"]["customers"]["edges"][0]["node"]["name"] == "Ann Lee"

        changed = await api.gql(
            admin, 'mutation { unassignRole(user: "bob", role: "support_agent") { ok userErrors { message } } }'
        )
        assert changed["data"]["unassignRole"] == {"ok": True, "userErrors": []}, changed

        # The instance that made the change denies at once…
        now = await api.gql(bob, query)
        assert now["data"]["customers"] is None
        assert now["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        # …and the second instance within a second, through NOTIFY.
        async def denied_on_second() -> bool:
            body = await second.gql(bob, query)
            return body["data"]["customers"] is None

        await _wait_until(denied_on_second, 1.0)


async def test_grant_and_revoke_a_field_change_what_a_role_sees(api: Api) -> None:
    admin = await api.user("alice", "admin")
    analyst = await api.user("carol", "analyst")
    await api.gql(admin, CUSTOMER)
    q = "{ customers(first: 1) { edges { node { name } } } }"
    denied = await api.gql(analyst, q)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"

    granted = await api.gql(
        admin, 'mutation { grantAccess(role: "analyst", object: "Customer.name", action: READ) { ok policyVersion } }'
    )
    assert granted["data"]["grantAccess"]["ok"] is True
    assert (await api.gql(analyst, q))["data"]["customers"]["edges"][0]["node"]["name"] == "Ann Lee"

    explained = await api.gql(
        admin,
        '{ explainAccess(subject: "user:carol", field: "Customer.name", action: READ) { allowed decision rules reason } }',
    )
    assert explained["data"]["explainAccess"]["allowed"] is True
    assert explained["data"]["explainAccess"]["rules"] == ["role:analyst, Customer.name, read, allow"]

    # An explicit deny overrides the allow.
    await api.gql(
        admin, 'mutation { grantAccess(role: "analyst", object: "Customer.*", action: READ, effect: DENY) { ok } }'
    )
    assert (await api.gql(analyst, q))["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"
    explained = await api.gql(
        admin, '{ explainAccess(subject: "user:carol", field: "Customer.name") { allowed decision reason } }'
    )
    assert explained["data"]["explainAccess"]["allowed"] is False
    assert explained["data"]["explainAccess"]["decision"] == "DENIED"
    assert "deny" in explained["data"]["explainAccess"]["reason"]

    log = await api.gql(
        admin,
        '{ auditLog(first: 10, filter: {actor: "user:alice"}) { totalCount edges { node { action before after } } } }',
    )
    actions = [e["node"]["action"] for e in log["data"]["auditLog"]["edges"]]
    assert actions[:2] == ["grant", "grant"]
    assert log["data"]["auditLog"]["edges"][0]["node"]["after"]["rule"] == [
        "role:analyst",
        "Customer.*",
        "read",
        "deny",
    ]


async def test_admin_operations_are_refused_to_other_roles(api: Api) -> None:
    bob = await api.user("bob", "support_agent")
    for op in (
        'mutation { grantAccess(role: "support_agent", object: "Customer.nationalId", action: READ) { ok } }',
        'mutation { assignRole(user: "bob", role: "admin") { ok } }',
        'mutation { createPartnerToken(partner: "X", name: "x") { token } }',
    ):
        body = await api.gql(bob, op)
        assert next(iter(body["data"].values())) is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for q in (
        "{ auditLog { totalCount } }",
        '{ explainAccess(subject: "user:bob", field: "Customer.phone") { allowed } }',
    ):
        body = await api.gql(bob, q)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_partner_token_lifecycle(api: Api) -> None:
    admin = await api.user("alice", "admin")
    made = await api.gql(
        admin,
        'mutation { createPartnerToken(partner: "Northwind Shop", name: "shop sync", scopes: ["read:*", "write:*"]) '
        "{ token apiToken { id role scopes } userErrors { message } } }",
    )
    token = made["data"]["createPartnerToken"]["token"]
    assert token.startswith("tw_pat_")
    viewer = await api.gql(token, "{ viewer { kind roles partnerId } }")
    assert viewer["data"]["viewer"]["kind"] == "token"
    assert viewer["data"]["viewer"]["roles"] == ["partner"]

    listed = await api.gql(admin, "{ apiTokens { id name revokedAt } }")
    # the secret is never shown again (the whole secret: it may itself hold "_", and a short piece of it
    # could turn up in an id by chance)
    secret = token.removeprefix("tw_pat_").partition("_")[2]
    assert len(secret) >= 40
    assert listed["data"]["apiTokens"]
    assert all(secret not in str(t) for t in listed["data"]["apiTokens"])

    token_id = made["data"]["createPartnerToken"]["apiToken"]["id"]
    revoked = await api.gql(admin, f'mutation {{ revokePartnerToken(id: "{token_id}") {{ ok }} }}')
    assert revoked["data"]["revokePartnerToken"]["ok"] is True
    after = await api.gql(token, "{ viewer { kind } }")
    assert after["_status"] == 401
    assert after["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_admin_input_changes_nothing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    before = await api.gql(admin, "{ policies { subject } }")
    for op, field in (
        (
            'mutation { grantAccess(role: "nobody", object: "Customer.name", action: READ) { ok userErrors { field code } } }',
            "role",
        ),
        (
            'mutation { grantAccess(role: "analyst", object: "Customer.nope", action: READ) { ok userErrors { field code } } }',
            "object",
        ),
        (
            'mutation { grantAccess(role: "analyst", object: "Customer.name; DROP", action: READ) { ok userErrors { field code } } }',
            "object",
        ),
        ('mutation { createRole(name: "Bad Name") { ok userErrors { field code } } }', "role"),
        ('mutation { assignRole(user: "x", role: "ghost") { ok userErrors { field code } } }', "role"),
    ):
        body = await api.gql(admin, op)
        payload = next(iter(body["data"].values()))
        assert payload["ok"] is False
        assert payload["userErrors"][0]["field"] == field
    after = await api.gql(admin, "{ policies { subject } }")
    assert len(after["data"]["policies"]) == len(before["data"]["policies"])
