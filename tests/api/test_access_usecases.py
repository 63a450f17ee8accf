"""The access-administration use-cases called directly, as the CLI, jobs and the console call them: a
connection, a caller, a command; no HTTP, no GraphQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from api.usecases import access
from api.usecases.caller import CLI, Caller
from authz.principal import Principal, PrincipalKind
from domain.errors import Forbidden, NotFound, ValidationFailed
from infra.repos import audit as audit_repo
from infra.repos.base import Scope


async def _one(engine: Any, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).one()


async def _count(engine: Any, sql: str, **params: Any) -> int:
    return int((await _one(engine, sql, **params))[0])


async def test_cli_caller_creates_a_token_grants_and_explains(engine: Any) -> None:
    async with engine.connect() as conn:
        created = await access.create_partner_token(
            conn, CLI, access.CreatePartnerToken(partner=" Northwind Shop ", name="sync", scopes=["read:*"])
        )
        await conn.commit()
    token_id = created.row["id"]
    assert created.token.startswith(f"tw_pat_{token_id.hex}_")
    assert created.row["scopes"] == ["read:*"]
    assert created.row["role"] == "partner"

    secret = created.token.removeprefix(f"tw_pat_{token_id.hex}_")
    row = await _one(
        engine,
        "SELECT p.name, t.secret_hash, t.created_by FROM api_tokens t JOIN partners p ON p.id = t.partner_id"
        " WHERE t.id = :id",
        id=token_id,
    )
    assert tuple(row) == ("Northwind Shop", access.hash_secret(secret), "cli")
    audit = await _one(engine, "SELECT actor, after FROM audit_log WHERE action = 'token.create'")
    assert audit.actor == "cli"
    assert audit.after["partner"] == "Northwind Shop"

    async with engine.connect() as conn:
        before = (await access.load_policy(conn)).version
        version = await access.grant(conn, CLI, "analyst", "Customer.name", "read")
        await conn.commit()
    assert version == before + 1

    async with engine.connect() as conn:
        policy = await access.load_policy(conn)
        explained = await access.explain_access(conn, policy, "role:analyst", "Customer.name", "read")
        token_explained = await access.explain_access(
            conn, policy, f"token:{token_id}", "Mutation.grantAccess", "write"
        )
        analyst = next(r for r in await access.list_roles(conn, policy) if r.name == "analyst")
    assert explained.allowed
    assert explained.rules == ["role:analyst, Customer.name, read, allow"]
    assert explained.decision == "FULL"
    assert explained.policy_version == version
    assert token_explained.allowed is False
    assert token_explained.decision is None
    assert access.PolicyRule("role:analyst", "Customer.name", "read", "allow") in analyst.grants


async def test_bad_commands_raise_domain_errors_and_write_nothing(engine: Any) -> None:
    async with engine.connect() as conn:
        created = await access.create_partner_token(
            conn, CLI, access.CreatePartnerToken(partner="Northwind Shop", name="sync", scopes=["read:*"])
        )
        await conn.commit()
    row = created.row
    tokens, audits = "SELECT count(*) FROM api_tokens", "SELECT count(*) FROM audit_log"
    counts = (await _count(engine, tokens), await _count(engine, audits))

    partner = Principal(
        kind=PrincipalKind.TOKEN,
        id=str(row["id"]),
        roles=("partner",),
        partner_id=row["partner_id"],
        scopes=("read:*",),
    )
    as_partner = Caller(actor=partner.subject, principal=partner, scope=Scope(partner_id=row["partner_id"]))
    wider = access.CreatePartnerToken(partner="Northwind Shop", name="wider", scopes=["write:*"])
    async with engine.connect() as conn:
        policy = await access.load_policy(conn)
    bad: list[tuple[Any, type[Exception], str]] = [
        (lambda c: access.create_partner_token(c, as_partner, wider), Forbidden, "wider than this token's own"),
        (
            lambda c: access.create_partner_token(c, CLI, access.CreatePartnerToken(" ", "x")),
            ValidationFailed,
            "partner and name are required",
        ),
        (lambda c: access.set_partner_token_rate_limit(c, CLI, "not-a-uuid", 10), NotFound, "no such token"),
        (
            lambda c: access.set_partner_token_rate_limit(c, CLI, str(row["id"]), 0),
            ValidationFailed,
            "perMinute",
        ),
        (lambda c: access.revoke_partner_token(c, CLI, "nope"), NotFound, "no such active token"),
        (lambda c: access.explain_access(c, policy, "user:bob", "Customer.nope"), ValidationFailed, "catalogue"),
        (
            lambda c: access.audit_page(c, CLI, access.AuditQuery(first=0), max_page_size=100),
            ValidationFailed,
            "first must be between 1 and 100",
        ),
    ]
    for call, error, message in bad:
        async with engine.connect() as conn:
            with pytest.raises(error, match=message):
                await call(conn)
            await conn.rollback()
    assert (await _count(engine, tokens), await _count(engine, audits)) == counts


async def test_rate_limit_is_set_and_audited_with_the_request_id(engine: Any) -> None:
    async with engine.connect() as conn:
        created = await access.create_partner_token(
            conn, CLI, access.CreatePartnerToken(partner="Northwind Shop", name="sync")
        )
        await conn.commit()
    caller = Caller(actor="user:alice", request_id="req-1")
    async with engine.connect() as conn:
        row = await access.set_partner_token_rate_limit(conn, caller, str(created.row["id"]), 600)
        await conn.commit()
    assert row["rate_limit_per_minute"] == 600
    stored = await _count(engine, "SELECT rate_limit_per_minute FROM api_tokens WHERE id = :id", id=created.row["id"])
    assert stored == 600
    audit = await _one(
        engine, "SELECT actor, request_id, before, after FROM audit_log WHERE action = 'token.rate_limit'"
    )
    assert tuple(audit) == ("user:alice", "req-1", {"rateLimitPerMinute": None}, {"rateLimitPerMinute": 600})

    async with engine.connect() as conn:
        page = await access.audit_page(
            conn,
            CLI,
            access.AuditQuery(first=1, filter=audit_repo.AuditFilter(actor="user:alice")),
            max_page_size=100,
        )
        assert [r["action"] for r in page.page.rows] == ["token.rate_limit"]
        assert await page.count() == 1
        tokens = await access.list_partner_tokens(conn, CLI)
    assert [t["name"] for t in tokens] == ["sync"]
