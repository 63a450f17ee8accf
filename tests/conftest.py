"""Test fixtures against a real PostgreSQL.

One template database is migrated once per run; every test that touches data gets its own
database cloned from it (``CREATE DATABASE … TEMPLATE``), dropped afterwards — full isolation,
including for tests that commit, notify or run two app instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.edge.app import Services, create_app
from api.edge.auth import issue_staff_token
from api.usecases.access import new_partner_token
from authz import admin
from infra.db import create_engine
from infra.migrate import upgrade
from infra.settings import Settings

ADMIN_URL = os.environ.get("TIERWISE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN = uuid.uuid4().hex[:8]


def _url_for(db: str) -> str:
    return make_url(ADMIN_URL).set(database=db).render_as_string(hide_password=False)


async def _admin_execute(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _drop(db: str) -> None:
    await _admin_execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


async def _drop_all(names: list[str], connections: int = 8) -> None:
    """Drop these databases over a few connections at once. Each DROP DATABASE waits for a checkpoint, and
    drops waiting at the same time share one: one by one took ~6 s a database on a loaded machine (10-20
    minutes at the end of a run), 8 at a time ~0.4 s. Every drop is tried; the first failure is raised."""
    pending = list(names)

    async def worker() -> None:
        try:
            conn = await asyncpg.connect(ADMIN_URL)
        except (OSError, asyncpg.PostgresError):
            return  # no connection to spare (the server's limit): the other workers drain the list
        try:
            while pending:
                db = pending.pop()
                await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()

    results = await asyncio.gather(*(worker() for _ in range(min(connections, len(pending)))), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if pending:  # no worker could connect, or a drop failed: drop the rest one by one rather than leak them
        for db in pending:
            await _drop(db)
    if errors:
        raise errors[0]


# Databases made during the run, dropped at its end (``_drop_all``): dropping each one after its test
# would make every test wait for a checkpoint.
_MADE: list[str] = []


@pytest.fixture(scope="session")
async def template_db() -> AsyncIterator[str]:
    name = f"tierwise_tmpl_{RUN}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(upgrade, _url_for(name))
        yield name
    finally:
        await _drop_all([*_MADE, name])  # the template too: its clones don't depend on it


@pytest.fixture
async def fresh_database_url(template_db: str) -> Callable[[], Awaitable[str]]:
    async def make() -> str:
        name = f"tierwise_t_{RUN}_{uuid.uuid4().hex[:10]}"
        await _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        _MADE.append(name)
        return _url_for(name)

    return make


@pytest.fixture(scope="session")
async def migrated_url(template_db: str) -> str:
    """A migrated database shared by a whole run (for read-only or self-cleaning tests)."""
    name = f"tierwise_s_{RUN}"
    await _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    _MADE.append(name)  # dropped with the others when template_db ends
    return _url_for(name)


@pytest.fixture
async def database_url(fresh_database_url: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database_url()


def test_settings(**overrides: Any) -> Settings:
    overrides.setdefault("run_worker", False)  # tests run jobs explicitly
    overrides.setdefault("gc_freeze", False)  # hundreds of apps in one process: freezing each would pin it
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, where it is imported


@dataclass
class Api:
    """A running app (lifespan entered) and an HTTP client to it, with helpers to make callers."""

    app: Any
    client: httpx.AsyncClient
    settings: Settings
    url: str

    @property
    def services(self) -> Services:
        return self.app.state.services["services"]  # type: ignore[no-any-return]

    async def user(self, sub: str, *roles: str) -> str:
        """A staff JWT for ``sub`` holding ``roles`` (assigned through the admin use-case)."""
        async with self.services.engine.connect() as conn:
            for role in roles:
                with contextlib.suppress(Exception):
                    await admin.assign_role(conn, sub, role, actor="test")
            await conn.commit()
        await self.services.authz.reload()
        return issue_staff_token(self.settings, sub)

    async def partner_token(
        self,
        partner: str = "Northwind Shop",
        scopes: tuple[str, ...] = ("read:*", "write:*"),
        role: str = "partner",
    ) -> tuple[str, uuid.UUID]:
        """A partner API token; returns (token, partner id)."""
        token_id, token, token_hash = new_partner_token()
        async with self.services.engine.connect() as conn:
            row = await admin.create_partner_token(
                conn,
                partner_name=partner,
                name=f"{partner} test token",
                scopes=list(scopes),
                role=role,
                actor="test",
                token_id=token_id,
                token_hash=token_hash,
                expires_at=None,
            )
            await conn.commit()
        return token, row["partner_id"]

    async def forced_partner_token(self, partner: str, role: str) -> tuple[str, uuid.UUID]:
        """A partner token holding ``role`` written straight into the database, past the refusal of
        system-administering roles (``authz.confinement``): what a database edited by hand could hold."""
        token, partner_id = await self.partner_token(partner)
        token_id = uuid.UUID(hex=token.removeprefix("tw_pat_").partition("_")[0])
        async with self.services.engine.connect() as conn:
            await conn.execute(
                text("UPDATE api_tokens SET role = :role WHERE id = :id"), {"role": role, "id": token_id}
            )
            await conn.commit()
        return token, partner_id

    async def gql(
        self, token: str | None, query: str, variables: dict[str, Any] | None = None, **headers: str
    ) -> dict[str, Any]:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        h.update(headers)
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=h)
        body: dict[str, Any] = response.json()
        body["_status"] = response.status_code
        return body


@contextlib.asynccontextmanager
async def running_api(url: str, settings: Settings | None = None) -> AsyncIterator[Api]:
    settings = settings or test_settings()
    app = create_app(settings, database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tierwise.test") as client:
            yield Api(app=app, client=client, settings=settings, url=url)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_api(database_url) as running:
        yield running


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Any]:
    eng = create_engine(database_url, test_settings())
    yield eng
    await eng.dispose()
