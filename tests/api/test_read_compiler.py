"""The read compiler (api/graphql/compiler.py, infra/readsql.py; issue 12) from outside and at its plans:
plans cached per (document, operation, decision set, @include/@skip values); FORBIDDEN_FIELD at the exact
path of every item; masks as the catalogue says; the partner scope in the statement's WHERE; one statement
per root field; the bytes of PostgreSQL passed through untouched where no leaf needs Python."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from authz.masking import mask_email, mask_phone
from infra.db import StatementCounter
from tests.api.security_helpers import build_world, own_database
from tests.api.test_compiled_equivalence import BENCH_PAGE, Pair, reads_of
from tests.conftest import running_api, test_settings


@pytest.fixture(scope="module")
async def pair(template_db: str) -> AsyncIterator[Pair]:
    """Strawberry alone (the reference) and the compiled paths, on one database (rate limits off in both)."""
    reference = test_settings(rate_limit_enabled=False, compiled_queries=False)
    async with own_database(template_db) as url, running_api(url, reference) as api:
        w = await build_world(api)
        async with running_api(url, test_settings(compiled_queries=True, rate_limit_enabled=False)) as compiled:
            yield Pair(w, compiled)


CONTACTS = "query($n: Int!) { customers(first: $n) { edges { node { name email phone nationalId } } } }"


def _compiler(p: Pair) -> Any:
    return reads_of(p.compiled).compiler  # the app is built by its first request: the fixture's warm-up


def _plans(p: Pair, who: str) -> dict[Any, Any]:
    """The plans cached on the decisions of ``who``'s role set."""
    app = p.compiled
    store = app.services.authz.store
    principal_roles = {"admin": ("admin",), "support_agent": ("support_agent",)}[who]
    decisions = store.decisions_for(principal_roles, None, confined=False)
    return decisions.memo.get("compiled_plans", {})


async def test_plans_are_cached_per_document_decision_set_and_directive_values(pair: Pair) -> None:
    w = pair.world
    query = "query($n: Int!, $x: Boolean!) { customers(first: $n) { edges { node { name email @include(if: $x) } } } }"
    await pair.compiled.gql(w.tokens["admin"], "{ __typename }")
    compiler = _compiler(pair)
    before = compiler.executed
    a = await pair.compiled.gql(w.tokens["admin"], query, {"n": 2, "x": True})
    b = await pair.compiled.gql(w.tokens["admin"], query, {"n": 3, "x": True})
    c = await pair.compiled.gql(w.tokens["admin"], query, {"n": 2, "x": False})
    await pair.compiled.gql(w.tokens["support_agent"], query, {"n": 2, "x": True})
    assert compiler.executed == before + 4
    assert all("email" in e["node"] for e in a["data"]["customers"]["edges"])
    assert len(b["data"]["customers"]["edges"]) == 3
    assert all("email" not in e["node"] for e in c["data"]["customers"]["edges"])
    admin_plans = [k for k in _plans(pair, "admin") if k[0] == query]
    # one plan for both values of $n, one per value of $x
    assert sorted(k[2] for k in admin_plans) == [(False,), (True,)]
    agent_plans = [k for k in _plans(pair, "support_agent") if k[0] == query]
    assert [k[2] for k in agent_plans] == [(True,)]
    # the agent's plan masks e-mail in the leaf pass; the admin's audits it (both are checked leaves)
    admin_plan = _plans(pair, "admin")[admin_plans[0]]
    assert admin_plan is not _plans(pair, "support_agent")[agent_plans[0]]


async def test_denied_fields_are_null_with_forbidden_field_at_each_items_path_and_masks_apply(pair: Pair) -> None:
    w = pair.world
    body = await pair.compiled.gql(w.tokens["support_agent"], CONTACTS, {"n": 3})
    edges = body["data"]["customers"]["edges"]
    assert len(edges) == 3
    assert {(tuple(e["path"]), e["extensions"]["code"]) for e in body["errors"]} == {
        (("customers", "edges", i, "node", "nationalId"), "FORBIDDEN_FIELD") for i in range(3)
    }
    full = await pair.compiled.gql(w.tokens["admin"], CONTACTS, {"n": 3})
    for masked, plain in zip(edges, full["data"]["customers"]["edges"], strict=True):
        assert masked["node"]["nationalId"] is None
        assert masked["node"]["email"] == mask_email(plain["node"]["email"])
        assert masked["node"]["phone"] == mask_phone(plain["node"]["phone"])
        assert plain["node"]["nationalId"]


async def test_the_partner_scope_is_in_the_statement(pair: Pair) -> None:
    w = pair.world
    with StatementCounter(pair.compiled.services.engine) as seen:
        body = await pair.compiled.gql(
            w.tokens["partner"], "{ customers(first: 10) { totalCount edges { node { id name } } } }"
        )
    (statement,) = [s for s in seen.statements if "FROM customers" in s]
    assert "partner_id = CAST(" in statement
    ids = [e["node"]["id"] for e in body["data"]["customers"]["edges"]]
    assert ids == [w.paula]
    assert body["data"]["customers"]["totalCount"] == 1
    # another partner's customer by id: not found, as any unknown id
    other = await pair.compiled.gql(
        w.tokens["partner"], "query($id: ID!) { customer(id: $id) { name } }", {"id": w.bruno}
    )
    assert other["data"]["customer"] is None
    assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    with StatementCounter(pair.compiled.services.engine) as seen:
        await pair.compiled.gql(w.tokens["admin"], "{ customers(first: 10) { totalCount } }")
    assert all("partner_id = CAST(" not in s for s in seen.statements)


async def test_the_bytes_of_postgresql_pass_through_where_no_leaf_needs_python(pair: Pair, monkeypatch: Any) -> None:
    """No checked leaf (only fields the admin reads in full, none sensitive): the JSON text of the statement is
    the response's, unparsed (an ``orjson.Fragment``). With e-mail selected the leaf pass parses, decrypts and
    audits."""
    w = pair.world
    await pair.compiled.gql(w.tokens["admin"], "{ __typename }")
    compiler = _compiler(pair)
    answers: list[Any] = []
    real_run = compiler.run

    async def recording_run(*args: Any) -> Any:
        answers.append(await real_run(*args))
        return answers[-1]

    monkeypatch.setattr(compiler, "run", recording_run)
    query = "{ customers(first: 3) { edges { cursor node { id name tier { code } } } pageInfo { hasNextPage } } }"
    compiled = await pair.compiled.gql(w.tokens["admin"], query)
    assert [type(a) for a in answers] == [orjson.Fragment]
    assert compiled == await w.api.gql(w.tokens["admin"], query)
    answers.clear()
    await pair.compiled.gql(w.tokens["admin"], BENCH_PAGE, {"first": 3, "after": None})
    assert [type(a) for a in answers] == [dict]
    assert "@" in answers[0]["edges"][0]["node"]["email"]  # decrypted in the leaf pass


async def test_what_the_compiler_does_not_cover_goes_to_strawberry(pair: Pair) -> None:
    w = pair.world
    await pair.compiled.gql(w.tokens["admin"], "{ __typename }")
    compiler = _compiler(pair)
    before = compiler.executed
    for query in (
        "{ customers(first: 2) { edges { node { name tierExplanation { __typename } } } } }",
        "{ complaintCategories { code } }",
        "{ viewer { subject } }",
    ):
        compiled = await pair.compiled.gql(w.tokens["admin"], query)
        assert compiled == await w.api.gql(w.tokens["admin"], query), query
    assert compiler.executed == before
    # what the older executor answered until the compiler covered it: compiled now, alike
    for query in (
        "{ complaints(filter: {severities: [HIGH], breached: false}) { totalCount edges { node { subject } } } }",
        "{ customers(first: 2) { edges { node { churnRisk { level signals } } } } }",
        "{ surveys { edges { node { title channels questions { kind options } } } } }",
    ):
        compiled = await pair.compiled.gql(w.tokens["admin"], query)
        assert compiled == await w.api.gql(w.tokens["admin"], query), query
    assert compiler.executed == before + 3


async def test_an_unexpected_error_on_the_compiled_path_is_masked(pair: Pair, monkeypatch: Any) -> None:
    """A failure inside the compiler is INTERNAL with a request id, its text (customer data) never sent."""
    from infra import readsql

    w = pair.world

    def leaky(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("secret internals: ada@example.com")

    monkeypatch.setattr(readsql.Builder, "list_root", leaky)
    body = await pair.compiled.gql(w.tokens["admin"], "{ customers(first: 7) { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert "request id" in body["errors"][0]["message"]
    assert "ada@example.com" not in str(body)


async def test_the_compiled_statement_is_cancelled_by_the_statement_timeout(template_db: str, monkeypatch: Any) -> None:
    """The statement timeout holds for the compiled statement: TIMEOUT at the root field, the connection back."""
    from sqlalchemy import text

    from infra import readsql
    from infra.db import pool_status

    monkeypatch.setattr(readsql, "statement", lambda _sql: text("SELECT pg_sleep(5)::text"))
    async with own_database(template_db) as url:
        settings = test_settings(statement_timeout_ms=300, compiled_queries=True, rate_limit_enabled=False)
        async with running_api(url, settings) as api:
            token = await api.user("alice", "admin")
            body = await api.gql(token, "{ customers(first: 3) { totalCount } }")
            assert [e["extensions"]["code"] for e in body["errors"]] == ["TIMEOUT"], body
            assert body["data"] == {"customers": None}
            assert pool_status(api.services.engine).checked_out == 0


@pytest.mark.parametrize(
    "query",
    [
        "{ customers(first: 3) { totalCount } }",  # a compiled read, answered at the HTTP edge
        "{ tierDistribution { customers } }",  # strawberry's path: its extensions' hooks
    ],
)
async def test_an_exception_escaping_the_execute_hooks_gives_the_connection_back(
    template_db: str, monkeypatch: Any, query: str
) -> None:
    """The request's connection goes back to the pool when an exception escapes after it was taken: here
    the rate-limit lease ran its statement on the request's connection, then failed. Strawberry throws such
    an exception into the operation hooks at their ``yield``; the audit hook's ``finally`` used to start
    after it, so the connection stayed checked out. The error is the operation's (INTERNAL, no data)."""
    from infra.repos import ratelimit as ratelimit_repo

    leased = []
    lease = ratelimit_repo.lease

    async def lease_then_fail(conn: Any, **kwargs: Any) -> Any:
        leased.append(await lease(conn, **kwargs))
        raise RuntimeError("after the lease")

    monkeypatch.setattr(ratelimit_repo, "lease", lease_then_fail)
    async with own_database(template_db) as url:
        settings = test_settings(compiled_queries=True, rate_limit_enabled=True)
        async with running_api(url, settings) as api:
            token = await api.user("alice", "admin")
            await pool_idle(api)  # the policy reload the role assignment set off is over
            for attempt in (1, 2):  # the second time, a compiled read's document is known: the edge answers it
                body = await api.gql(token, query)
                assert len(leased) == attempt, "the lease statement ran"
                assert body["data"] is None, body
                assert [e["extensions"]["code"] for e in body["errors"]] == ["INTERNAL"], body
                await pool_idle(api)  # a connection left checked out would never come back


async def pool_idle(api: Any, seconds: float = 3.0) -> None:
    """Every connection of the app's pool back within ``seconds`` (background tasks take one now and then)."""
    import asyncio
    import time

    from infra.db import pool_status

    deadline = time.monotonic() + seconds
    while (status := pool_status(api.services.engine)).checked_out:
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)
