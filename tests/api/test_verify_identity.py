"""verifyCustomerIdentity (issue 17, F4): a support agent confirms what a caller says without seeing
the value — match / no match through the blind index, a few attempts per (agent, customer) and
window shared by every instance, one audit row per attempt with its result and never the value."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from alembic import command
from sqlalchemy import text

from infra.migrate import alembic_config, upgrade
from tests.api.helpers import create_customer, error_codes, global_id, raw_id
from tests.conftest import Api, running_api, test_settings

VERIFY = """mutation($id: ID!, $attribute: IdentityAttribute!, $value: String!) {
  verifyCustomerIdentity(customerId: $id, attribute: $attribute, value: $value) {
    matched attemptsLeft retryAfterSeconds userErrors { field code message } } }"""
PERSON = {
    "name": "Ada Verifiable",
    "email": "ada.verifiable@example.org",
    "phone": "+49 30 99887766",
    "nationalId": "AV-123-456-789",
    "birthDate": "1984-02-29",
}


async def _verify(api: Api, token: str, customer: str, attribute: str, value: str) -> dict[str, Any]:
    body = await api.gql(token, VERIFY, {"id": customer, "attribute": attribute, "value": value})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["verifyCustomerIdentity"]
    return result


async def _audit(api: Api, customer: str) -> list[dict[str, Any]]:
    async with api.services.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT actor, action, fields, before, after FROM audit_log"
                " WHERE action = 'identity_verified' AND :id = ANY(target_ids) ORDER BY id"
            ),
            {"id": str(raw_id(customer))},
        )
        return [dict(r._mapping) for r in rows]


async def _person(api: Api, **fields: Any) -> str:
    admin = await api.user("verify-admin", "admin")
    customer = await create_customer(api, admin, **(PERSON | fields))
    return str(customer["id"])


async def test_a_support_agent_verifies_each_attribute_without_seeing_it(api: Api) -> None:
    customer = await _person(api)
    agent = await api.user("verify-agent", "support_agent")
    # the agent sees none of these values in full
    body = await api.gql(agent, "query($id: ID!) { customer(id: $id) { email phone birthDate } }", {"id": customer})
    assert body["data"]["customer"] == {"email": "***@***.org", "phone": "+49********66", "birthDate": "1984"}
    answers = [
        ("EMAIL", " Ada.Verifiable@EXAMPLE.org ", True),  # normalised like a write
        ("EMAIL", "ada.verifiable@example.com", False),
        ("PHONE", "030 99887766", True),  # national format, the default region (DE)
        ("PHONE", "+49 30 99887767", False),
    ]
    for attribute, value, expected in answers:
        result = await _verify(api, agent, customer, attribute, value)
        assert result["userErrors"] == [], result
        assert result["matched"] is expected, (attribute, value, result)
    other = await api.user("verify-agent-2", "support_agent")  # a separate allowance per agent
    for attribute, value, expected in [
        ("NATIONAL_ID", "av-123-456-789", True),
        ("NATIONAL_ID", "AV-123-456-780", False),
        ("BIRTH_DATE", "1984-02-29", True),
        ("BIRTH_DATE", "1984-03-01", False),
    ]:
        result = await _verify(api, other, customer, attribute, value)
        assert result["matched"] is expected, (attribute, value, result)
    rows = await _audit(api, customer)
    assert [(r["actor"], r["after"]["result"]) for r in rows] == [
        ("user:verify-agent", "match"),
        ("user:verify-agent", "no_match"),
        ("user:verify-agent", "match"),
        ("user:verify-agent", "no_match"),
        ("user:verify-agent-2", "match"),
        ("user:verify-agent-2", "no_match"),
        ("user:verify-agent-2", "match"),
        ("user:verify-agent-2", "no_match"),
    ]
    assert [r["fields"] for r in rows[::2]] == [
        ["Customer.email"],
        ["Customer.phone"],
        ["Customer.nationalId"],
        ["Customer.birthDate"],
    ]
    logged = json.dumps(rows, default=str).lower()
    for value in ("verifiable@", "99887766", "99887767", "123-456", "1984-02-29", "1984-03-01", "example.com"):
        assert value not in logged  # the audit holds the result, never the value


async def test_verification_goes_through_the_blind_index_not_the_ciphertext(api: Api) -> None:
    """With the stored ciphertext destroyed the answer is unchanged: nothing was decrypted."""
    customer = await _person(api, email="blind.only@example.org")
    async with api.services.engine.begin() as conn:
        await conn.execute(
            text("UPDATE customers SET email = 'tw1:gone:AAAA', phone = 'tw1:gone:AAAA' WHERE id = :id"),
            {"id": raw_id(customer)},
        )
    agent = await api.user("verify-blind", "support_agent")
    assert (await _verify(api, agent, customer, "EMAIL", "blind.only@example.org"))["matched"] is True
    assert (await _verify(api, agent, customer, "PHONE", "+49 30 99887766"))["matched"] is True
    assert (await _verify(api, agent, customer, "EMAIL", "other@example.org"))["matched"] is False


async def test_attempts_are_limited_per_agent_and_customer_across_instances(database_url: str) -> None:
    settings = test_settings(verify_attempts=3, verify_window_s=3600)
    async with running_api(database_url, settings) as one, running_api(database_url, settings) as two:
        customer = await _person(one)
        second = await _person(one, email="second.person@example.org", name="Second Person")
        agent = await one.user("verify-limited", "support_agent")
        colleague = await one.user("verify-colleague", "support_agent")
        await two.services.authz.reload()  # (it would hear of the new role assignments within a second)
        lefts = []
        for n, instance in enumerate((one, two, one)):  # three attempts, on two instances
            result = await _verify(instance, agent, customer, "EMAIL", f"guess{n}@example.org")
            assert result["matched"] is False
            lefts.append(result["attemptsLeft"])
        assert lefts == [2, 1, 0]
        refused = await _verify(two, agent, customer, "EMAIL", PERSON["email"])
        assert refused["matched"] is None  # not checked, even though it is the right value
        assert [e["code"] for e in refused["userErrors"]] == ["RATE_LIMITED"]
        assert 1 <= refused["retryAfterSeconds"] <= 1200  # one attempt comes back every window / attempts
        assert [r["after"]["result"] for r in await _audit(one, customer)] == ["no_match"] * 3 + ["rate_limited"]
        # the allowance is per (agent, customer): another customer, or another agent, is not refused
        assert (await _verify(one, agent, second, "EMAIL", "second.person@example.org"))["matched"] is True
        assert (await _verify(two, colleague, customer, "EMAIL", PERSON["email"]))["matched"] is True


async def test_invalid_values_are_user_errors_and_cost_nothing(api: Api) -> None:
    customer = await _person(api)
    agent = await api.user("verify-invalid", "support_agent")
    for attribute, value in [
        ("EMAIL", "not an address"),
        ("PHONE", "12"),
        ("NATIONAL_ID", "!"),
        ("BIRTH_DATE", "29.02.1984"),
        ("BIRTH_DATE", "2999-01-01"),
        ("EMAIL", ""),
    ]:
        result = await _verify(api, agent, customer, attribute, value)
        assert result["matched"] is None
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [("value", "INVALID")], result
    nobody = global_id("Customer", "00000000-0000-0000-0000-000000000000")
    unknown = await _verify(api, agent, nobody, "EMAIL", PERSON["email"])
    assert [e["code"] for e in unknown["userErrors"]] == ["NOT_FOUND"]
    assert await _audit(api, customer) == []  # nothing audited, nothing charged:
    first = await _verify(api, agent, customer, "EMAIL", PERSON["email"])
    assert first == {"matched": True, "attemptsLeft": 4, "retryAfterSeconds": None, "userErrors": []}


async def test_only_granted_callers_verify_and_partners_only_their_own_customers(api: Api) -> None:
    customer = await _person(api)
    for role in ("analyst", "marketing", "data_steward"):
        token = await api.user(f"verify-{role}", role)
        body = await api.gql(token, VERIFY, {"id": customer, "attribute": "EMAIL", "value": PERSON["email"]})
        assert body["data"]["verifyCustomerIdentity"] is None
        assert error_codes(body) == ["FORBIDDEN"], (role, body)
    plain_partner, _ = await api.partner_token("Northwind Shop")
    body = await api.gql(plain_partner, VERIFY, {"id": customer, "attribute": "EMAIL", "value": PERSON["email"]})
    assert error_codes(body) == ["FORBIDDEN"]
    # a partner token given the support role checks its own customers, and no one else's
    contoso, _ = await api.partner_token("Contoso Call Centre")
    own = await create_customer(api, contoso, name="Own Caller", email="own.caller@example.org")
    desk, _ = await api.partner_token("Contoso Call Centre", role="support_agent")
    assert (await _verify(api, desk, own["id"], "EMAIL", "own.caller@example.org"))["matched"] is True
    foreign = await _verify(api, desk, customer, "EMAIL", PERSON["email"])
    assert foreign["matched"] is None
    assert [e["code"] for e in foreign["userErrors"]] == ["NOT_FOUND"]
    assert [r["actor"] for r in await _audit(api, customer)] == []


async def test_migration_0014_grants_and_takes_back_the_operation(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database_url()

    async def grants() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT v0 FROM casbin_rules WHERE ptype = 'p' AND v1 = 'Mutation.verifyCustomerIdentity'"
                " AND v2 = 'write' AND v3 = 'allow' ORDER BY v0"
            )
            return [r["v0"] for r in rows]
        finally:
            await conn.close()

    assert await grants() == ["role:admin", "role:support_agent"]
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0013")
    assert await grants() == []
    await asyncio.to_thread(upgrade, url)
    assert await grants() == ["role:admin", "role:support_agent"]
