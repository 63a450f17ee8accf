"""Trusted documents (issue 17, docs/sec-edge.md), over HTTP and through the CLI:

- ``tierwise documents register FILE…`` validates each document against the schema and stores it by
  the SHA-256 of its text (an invalid file is refused and nothing is stored); ``list``, ``remove``;
- with ``documents_mode=trusted`` only registered documents run — sent in full, as
  ``extensions.persistedQuery.sha256Hash`` or as ``documentId`` — and anything else gets one generic
  error, never parsed or validated, charged as a refusal;
- a partner token may be allowed arbitrary documents: at creation (GraphQL and CLI) and by an admin
  mutation;
- every instance keeps the registered set in memory and follows changes through LISTEN/NOTIFY: no
  request asks the database about documents.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command

from api.edge import cli
from api.edge.documents import check_document, register
from api.edge.limits import Limits
from api.graphql.schema import build_schema
from infra.db import StatementCounter, create_engine
from infra.migrate import alembic_config, upgrade
from tests.api.security_helpers import own_database, sql
from tests.conftest import Api, running_api, test_settings

VIEWER = "query Viewer { viewer { subject } }"
COUNT = "query CountCustomers { customers { totalCount } }"
CREATE_TOKEN = """mutation CreateToken($partner: String!, $name: String!, $any: Boolean!) {
  createPartnerToken(partner: $partner, name: $name, allowArbitraryDocuments: $any) {
    token apiToken { id allowArbitraryDocuments } userErrors { code message }
  }
}"""
SET_ANY = """mutation SetAny($id: ID!, $allow: Boolean!) {
  setPartnerTokenArbitraryDocuments(id: $id, allow: $allow) { apiToken { id allowArbitraryDocuments } userErrors { code } }
}"""
TRUSTED = {"documents_mode": "trusted"}
GENERIC = {
    "errors": [{"message": "only registered documents are accepted", "extensions": {"code": "UNTRUSTED_DOCUMENT"}}]
}


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


@pytest.fixture(scope="module")
async def url(template_db: str) -> AsyncIterator[str]:
    async with own_database(template_db) as made:
        engine = create_engine(made, test_settings())
        schema, limits = build_schema()._schema, Limits.from_settings(test_settings())
        try:
            async with engine.connect() as conn:
                checked = [check_document(schema, d, "test", limits) for d in (VIEWER, CREATE_TOKEN, SET_ANY)]
                await register(conn, checked, actor="test")
                await conn.commit()
        finally:
            await engine.dispose()
        yield made


@pytest.fixture(scope="module")
async def trusted(url: str) -> AsyncIterator[Api]:
    async with running_api(url, test_settings(**TRUSTED)) as api:
        yield api


@pytest.fixture(scope="module")
async def admin(trusted: Api) -> str:
    return await trusted.user("alice", "admin")


async def post(api: Api, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await api.client.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def run_cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("TIERWISE_DATABASE_URL", url)
    return cli.main(list(argv))


# ---------------------------------------------------------------- trusted mode over HTTP


async def test_registered_documents_run_by_text_by_hash_and_by_document_id(trusted: Api, admin: str) -> None:
    expected = {"data": {"viewer": {"subject": "user:alice"}}}
    assert await post(trusted, admin, {"query": VIEWER}) == (200, expected)
    apollo = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(VIEWER)}}}
    assert await post(trusted, admin, apollo) == (200, expected)
    assert await post(trusted, admin, {"documentId": f"sha256:{sha(VIEWER)}"}) == (200, expected)
    assert await post(trusted, admin, {"documentId": sha(VIEWER), "query": VIEWER}) == (200, expected)
    # over GET too, where GET is on (development)
    response = await trusted.client.get(
        "/graphql",
        params={"extensions": orjson.dumps(apollo["extensions"]).decode()},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert response.json() == expected


UNTRUSTED: list[dict[str, Any]] = [
    {"query": COUNT},  # valid, but not registered
    {"query": VIEWER + " "},  # a registered document's text changed by one space
    {"query": "{ customers }"},  # invalid: must not be validated ("must have a selection of subfields")
    {"query": "{ nope"},  # not even parsable
    {"documentId": "sha256:" + "0" * 64},
    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(COUNT)}}},
    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(COUNT)}}, "query": COUNT},
]


@pytest.mark.parametrize("body", UNTRUSTED, ids=range(len(UNTRUSTED)))
async def test_anything_else_gets_one_generic_refusal_without_parsing(
    trusted: Api, admin: str, body: dict[str, Any]
) -> None:
    with StatementCounter(trusted.services.engine) as counter:
        status, answer = await post(trusted, admin, body)
    assert (status, answer) == (400, GENERIC)
    assert all("rate_limit_buckets" in s for s in counter.statements), counter.statements  # only the charge


async def test_registered_requests_ask_the_database_nothing_about_documents(trusted: Api, admin: str) -> None:
    with StatementCounter(trusted.services.engine) as counter:
        for _ in range(3):
            assert (await post(trusted, admin, {"documentId": sha(VIEWER)}))[0] == 200
    assert not [s for s in counter.statements if "trusted_document" in s], counter.statements


async def test_untrusted_documents_spend_the_budget(url: str) -> None:
    settings = test_settings(**TRUSTED, rate_limit_user_per_minute=1000, rate_limit_refusal_cost=400)
    async with running_api(url, settings) as api:
        token = await api.user("prober", "admin")
        assert (await post(api, token, {"query": COUNT}))[0] == 400  # 600 left
        assert (await post(api, token, {"query": COUNT}))[0] == 400  # 200 left
        status, body = await post(api, token, {"query": COUNT})  # less than 400 left: all taken, 429
        assert status == 429
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert (await post(api, token, {"query": VIEWER}))[0] == 429  # the bucket is empty


# ---------------------------------------------------------------- partner tokens allowed arbitrary documents


async def test_a_partner_token_may_be_allowed_arbitrary_documents(trusted: Api, admin: str) -> None:
    tokens = {}
    for allow in (True, False):
        status, body = await post(
            trusted,
            admin,
            {"query": CREATE_TOKEN, "variables": {"partner": "Northwind Shop", "name": f"any={allow}", "any": allow}},
        )
        created = body["data"]["createPartnerToken"]
        assert created["userErrors"] == [], body
        assert created["apiToken"]["allowArbitraryDocuments"] is allow
        tokens[allow] = (created["token"], created["apiToken"]["id"])
    arbitrary = "{ customers { totalCount } }"
    status, body = await post(trusted, tokens[True][0], {"query": arbitrary})
    assert status == 200, body
    assert body["data"]["customers"]["totalCount"] == 0, body
    assert await post(trusted, tokens[False][0], {"query": arbitrary}) == (400, GENERIC)
    # an admin switches it, in force from the token's next request
    status, body = await post(trusted, admin, {"query": SET_ANY, "variables": {"id": tokens[False][1], "allow": True}})
    assert body["data"]["setPartnerTokenArbitraryDocuments"]["apiToken"]["allowArbitraryDocuments"] is True, body
    assert (await post(trusted, tokens[False][0], {"query": arbitrary}))[0] == 200
    await post(trusted, admin, {"query": SET_ANY, "variables": {"id": tokens[True][1], "allow": False}})
    assert await post(trusted, tokens[True][0], {"query": arbitrary}) == (400, GENERIC)
    audit = await sql(trusted.url, "SELECT count(*) AS n FROM audit_log WHERE action = 'token.arbitrary_documents'")
    assert audit[0]["n"] == 2


async def test_staff_and_partner_roles_cannot_set_it(trusted: Api, admin: str) -> None:
    agent = await trusted.user("bob", "support_agent")
    _, body = await post(
        trusted, admin, {"query": CREATE_TOKEN, "variables": {"partner": "Northwind Shop", "name": "x", "any": False}}
    )
    token_id = body["data"]["createPartnerToken"]["apiToken"]["id"]
    _, body = await post(trusted, agent, {"query": SET_ANY, "variables": {"id": token_id, "allow": True}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    rows = await sql(trusted.url, "SELECT allow_arbitrary_documents FROM api_tokens WHERE id = $1::uuid", token_id)
    assert rows[0]["allow_arbitrary_documents"] is False


async def test_cli_creates_tokens_allowed_arbitrary_documents(
    url: str, trusted: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tokens", "create", "--partner", "Southwind Traders", "--name", "cli-any", "--allow-arbitrary-documents"]
    assert await asyncio.to_thread(run_cli, monkeypatch, url, *argv) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    status, body = await post(trusted, token, {"query": "{ customers { totalCount } }"})
    assert status == 200, body
    token_id = token.removeprefix("tw_pat_").split("_")[0]
    argv = ["tokens", "arbitrary-documents", token_id, "off"]
    assert await asyncio.to_thread(run_cli, monkeypatch, url, *argv) == 0
    assert await post(trusted, token, {"query": "{ customers { totalCount } }"}) == (400, GENERIC)


# ---------------------------------------------------------------- the CLI and every instance


async def test_register_list_remove_and_every_instance_follows(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "count.graphql"
    good.write_text(COUNT)
    bad = tmp_path / "bad.graphql"
    bad.write_text("query Bad { customers }")
    async with (
        running_api(url, test_settings(**TRUSTED)) as one,
        running_api(url, test_settings(**TRUSTED)) as two,
    ):
        token = await one.user("alice", "admin")
        await two.services.authz.reload()
        for api in (one, two):
            assert await post(api, token, {"query": COUNT}) == (400, GENERIC)

        # an invalid file is refused with the validation message; nothing of the run is stored
        assert await asyncio.to_thread(run_cli, monkeypatch, url, "documents", "register", str(good), str(bad)) == 1
        err = capsys.readouterr().err
        assert "bad.graphql" in err, err
        assert "must have a selection of subfields" in err, err
        assert not await sql(url, "SELECT 1 FROM trusted_documents WHERE hash = $1", sha(COUNT))

        assert await asyncio.to_thread(run_cli, monkeypatch, url, "documents", "register", str(good)) == 0
        out = capsys.readouterr().out
        assert f"registered  sha256:{sha(COUNT)}  CountCustomers" in out, out
        assert "1 registered, 0 known already" in out
        assert await asyncio.to_thread(run_cli, monkeypatch, url, "documents", "register", str(good)) == 0
        assert "0 registered, 1 known already" in capsys.readouterr().out
        assert await asyncio.to_thread(run_cli, monkeypatch, url, "documents", "list") == 0
        listed = capsys.readouterr().out
        assert f"sha256:{sha(COUNT)}  CountCustomers" in listed, listed
        assert "4 documents registered" in listed, listed

        for api in (one, two):  # both instances learn of it (NOTIFY), without a request asking
            for _ in range(50):
                if api.services.documents.get(sha(COUNT)) is not None:
                    break
                await asyncio.sleep(0.05)
            status, body = await post(api, token, {"documentId": f"sha256:{sha(COUNT)}"})
            assert status == 200, body
            assert body["data"]["customers"]["totalCount"] >= 0, body

        assert await asyncio.to_thread(run_cli, monkeypatch, url, "documents", "remove", f"sha256:{sha(COUNT)}") == 0
        assert "1 removed, 0 not registered" in capsys.readouterr().out
        for api in (one, two):
            for _ in range(50):
                if api.services.documents.get(sha(COUNT)) is None:
                    break
                await asyncio.sleep(0.05)
            assert await post(api, token, {"query": COUNT}) == (400, GENERIC)
        audit = await sql(url, "SELECT action FROM audit_log WHERE action LIKE 'documents.%' ORDER BY id")
        assert [r["action"] for r in audit][-2:] == ["documents.register", "documents.remove"]


async def test_a_build_manifest_registers_every_document(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = ["query A { viewer { subject } }", "query B { viewer { roles } }"]
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_bytes(orjson.dumps({sha(d): d for d in docs}))
    assert await asyncio.to_thread(run_cli, monkeypatch, url, "documents", "register", str(manifest)) == 0
    assert "2 registered" in capsys.readouterr().out
    forged = tmp_path / "forged.json"
    forged.write_bytes(orjson.dumps({sha(docs[0]): "query C { viewer { subject } }"}))
    assert await asyncio.to_thread(run_cli, monkeypatch, url, "documents", "register", str(forged)) == 1
    assert "is not the SHA-256 of its document" in capsys.readouterr().err


# ---------------------------------------------------------------- outside trusted mode


async def test_hashes_work_in_any_mode_and_unknown_ones_ask_for_the_text(url: str) -> None:
    async with running_api(url) as api:
        token = await api.user("alice", "admin")
        assert (await post(api, token, {"documentId": sha(VIEWER)}))[1]["data"]["viewer"]["subject"] == "user:alice"
        status, body = await post(
            api, token, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}}
        )
        assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"  # Apollo then sends the text
        apq = {"query": COUNT, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(COUNT)}}}
        assert (await post(api, token, apq))[0] == 200  # runs (and registers nothing)
        mismatch = {"query": COUNT, "documentId": sha(VIEWER)}
        status, body = await post(api, token, mismatch)
        assert status == 400
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert (await post(api, token, {"documentId": "md5:abc"}))[0] == 400
        assert (await post(api, token, {"query": "{ viewer { subject } }"}))[0] == 200  # arbitrary text runs


async def test_migration_0013_downgrades_and_upgrades(fresh_database_url: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database_url()

    async def state() -> tuple[Any, Any, int]:
        rows = await sql(
            url,
            "SELECT to_regclass('trusted_documents') AS t, to_regclass('trusted_document_state') AS s, "
            "(SELECT count(*) FROM information_schema.columns WHERE table_name = 'api_tokens' "
            "AND column_name = 'allow_arbitrary_documents') AS c",
        )
        return rows[0]["t"], rows[0]["s"], rows[0]["c"]

    assert await state() == ("trusted_documents", "trusted_document_state", 1)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0012")
    assert await state() == (None, None, 0)
    await asyncio.to_thread(upgrade, url)
    assert await state() == ("trusted_documents", "trusted_document_state", 1)
    assert (await sql(url, "SELECT version FROM trusted_document_state"))[0]["version"] == 1
