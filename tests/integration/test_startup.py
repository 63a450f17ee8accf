"""Startup refuses a schema behind the code; health endpoints tell the truth."""

from __future__ import annotations

import asyncio
import base64
import gc
from collections.abc import Awaitable, Callable

import pytest

from api.edge.app import SchemaBehind, create_app
from infra.migrate import upgrade
from tests.conftest import Api, _admin_execute, _drop, _url_for, test_settings


async def test_refuses_to_start_on_a_schema_behind_the_code() -> None:
    name = "tierwise_behind_test"
    await _drop(name)
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(upgrade, _url_for(name), "0001")
        app = create_app(test_settings(), database_url=_url_for(name))
        with pytest.raises(SchemaBehind, match="run `tierwise migrate`"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await _drop(name)


async def test_startup_freezes_what_lives_then_out_of_the_cyclic_collector(database_url: str) -> None:
    gc.unfreeze()
    try:
        off = create_app(test_settings(gc_freeze=False), database_url=database_url)
        async with off.router.lifespan_context(off):
            assert gc.get_freeze_count() == 0
        on = create_app(test_settings(gc_freeze=True), database_url=database_url)
        async with on.router.lifespan_context(on):
            # The schema, the policy, the pools: tens of thousands of objects a full collection skips.
            assert gc.get_freeze_count() > 20_000
    finally:
        gc.unfreeze()


async def test_health_and_readiness(api: Api) -> None:
    health = await api.client.get("/healthz")
    assert health.status_code == 200
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["schema"] is not None


async def test_request_id_is_returned_and_a_given_one_is_kept(api: Api) -> None:
    token = await api.user("alice", "admin")
    r = await api.client.post(
        "/graphql",
        json={"query": "{ viewer { subject } }"},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "abc-123"},
    )
    assert r.headers["x-request-id"] == "abc-123"
    r = await api.client.post(
        "/graphql",
        json={"query": "{ viewer { subject } }"},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "bad id with spaces; drop"},
    )
    assert r.headers["x-request-id"] != "bad id with spaces"
    assert len(r.headers["x-request-id"]) == 32


async def test_unexpected_errors_are_masked(
    fresh_database_url: Callable[[], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.usecases import customers as usecases
    from tests.conftest import running_api, test_settings

    async def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(usecases, "customer_page", boom)
    # the failing use-case is strawberry's path (the read compiler's own failure: tests/api/test_read_compiler.py)
    async with running_api(await fresh_database_url(), test_settings(compiled_queries=False)) as api:
        token = await api.user("alice", "admin")
        body = await api.gql(token, "{ customers { totalCount } }")
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL"
    assert "hunter2" not in str(body)
    assert "request id" in error["message"]


async def test_graphiql_page_in_development_only(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    from tests.conftest import running_api

    url = await fresh_database_url()
    async with running_api(url) as dev:
        page = await dev.client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "GraphiQL" in page.text
    production = test_settings(
        environment="production",
        jwt_secret="a-production-secret-of-some-length-0123",
        encryption_keys="p1:" + base64.b64encode(b"production-test-encryption-key-1").decode(),
        blind_index_key=base64.b64encode(b"production-test-blind-index-key!").decode(),
    )
    async with running_api(url, production) as prod:
        page = await prod.client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 405  # GET is off in production (issue 17, docs/sec-edge.md)
        assert "GraphiQL" not in page.text
