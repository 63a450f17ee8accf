"""Engine, per-request connection and unit of work.

One ``RequestDb`` per request: it takes a pooled connection on first use, runs
every statement of the request on it (one at a time, behind a lock, because
strawberry resolves sibling fields concurrently) and gives it back at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from infra.settings import Settings

ConnectionFactory = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


def to_async_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` URLs and use the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('://', 1)[0]}://…")


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        to_async_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "application_name": "tierwise",
                "statement_timeout": str(settings.statement_timeout_ms),
            }
        },
    )


class StatementCounter:
    """Counts SQL statements sent through an engine (tests and benchmarks)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.statements: list[str] = []
        self._engine = engine

    def _on_execute(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1
        self.statements.append(str(args[2]))

    def __enter__(self) -> StatementCounter:
        event.listen(self._engine.sync_engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._engine.sync_engine, "before_cursor_execute", self._on_execute)


class RequestDb:
    """The database as one request sees it: one connection, one statement at a time."""

    def __init__(self, connect: ConnectionFactory) -> None:
        self._connect = connect
        self._cm: AbstractAsyncContextManager[AsyncConnection] | None = None
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._cm = self._connect()
            self._conn = await self._cm.__aenter__()
        return self._conn

    async def execute(self, statement: Executable, params: Any = None) -> Result[Any]:
        async with self._lock:
            conn = await self._connection()
            return await conn.execute(statement, params)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """Everything inside commits together or not at all.

        The lock is held for the whole unit, so concurrently resolved fields can't
        interleave statements with it.
        """
        async with self._lock:
            conn = await self._connection()
            if conn.in_transaction():
                await conn.commit()  # end the read-only transaction a query may have opened
            uow = UnitOfWork(conn)
            try:
                yield uow
            except BaseException:
                if conn.in_transaction():
                    await conn.rollback()
                raise
            else:
                if conn.in_transaction():
                    if uow.committed:
                        await conn.commit()
                    else:
                        await conn.rollback()

    async def close(self) -> None:
        if self._cm is not None and self._conn is not None:
            conn, cm = self._conn, self._cm
            self._conn = self._cm = None
            if conn.in_transaction():
                await conn.rollback()
            await cm.__aexit__(None, None, None)


class UnitOfWork:
    """Statements of one use-case; ``commit()`` marks it for commit at the end of the block."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.committed = False

    async def execute(self, statement: Executable, params: Any = None) -> Result[Any]:
        return await self.conn.execute(statement, params)

    def commit(self) -> None:
        self.committed = True
