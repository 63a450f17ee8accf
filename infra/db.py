"""Engine, per-request connection and unit of work.

One ``RequestDb`` per request: it takes a pooled connection on first use, runs
every statement of the request on it (one at a time, behind a lock, because
strawberry resolves sibling fields concurrently) and gives it back at the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import TextClause

from infra.settings import Settings

ConnectionFactory = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

log = logging.getLogger("tierwise.db")


def to_async_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` URLs and use the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('://', 1)[0]}://…")


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        to_async_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=False,  # pinged only after an idle spell (below)
        hide_parameters=True,  # bound values (customer data) never reach an exception message or a log
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            "server_settings": {
                "application_name": "tierwise",
                "statement_timeout": str(settings.statement_timeout_ms),
                # the name search (infra/repos/queues.py): pg_trgm's 0.6 misses one-letter typos in short names
                "pg_trgm.word_similarity_threshold": "0.4",
            },
        },
    )
    _ping_after_idle(engine, settings.db_ping_idle_s)
    return engine


_IDLE_SINCE = "tierwise_idle_since"


def _ping_after_idle(engine: AsyncEngine, idle_s: float) -> None:
    """``pool_pre_ping`` for connections that sat idle longer than ``idle_s``: a connection killed while
    idle (a database restart, an idle timeout, a failover) is replaced at checkout, not handed out; one
    coming straight back from another request is not pinged. A fresh connection has no idle mark."""
    dialect = engine.sync_engine.dialect

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa_exc.DisconnectionError("idle connection failed its ping") from exc
        if not alive:
            raise sa_exc.DisconnectionError("idle connection failed its ping")

    event.listen(engine.sync_engine, "checkin", checkin)
    event.listen(engine.sync_engine, "checkout", checkout)


class DbFailure(StrEnum):
    """Database failures a caller can act on (the API maps them to error codes)."""

    TIMEOUT = "timeout"  # the statement ran past statement_timeout and was cancelled
    UNAVAILABLE = "unavailable"  # connection refused or lost, server shutting down or restarting
    BUSY = "busy"  # no pooled connection within the pool timeout
    BAD_INPUT = "bad_input"  # a value PostgreSQL cannot store as text (e.g. a NUL character)


_SQLSTATES = {
    "57014": DbFailure.TIMEOUT,  # query_canceled (statement_timeout)
    "57P01": DbFailure.UNAVAILABLE,  # admin_shutdown (pg_terminate_backend, restart)
    "57P02": DbFailure.UNAVAILABLE,  # crash_shutdown
    "57P03": DbFailure.UNAVAILABLE,  # cannot_connect_now (starting up)
    "53300": DbFailure.UNAVAILABLE,  # too_many_connections
    "22021": DbFailure.BAD_INPUT,  # character_not_in_repertoire
    "22P05": DbFailure.BAD_INPUT,  # untranslatable_character
}


def classify_db_error(exc: BaseException | None) -> DbFailure | None:
    """What kind of database failure ``exc`` (or anything in its cause chain) is, if any."""
    seen = 0
    while exc is not None and seen < 8:
        seen += 1
        if isinstance(exc, sa_exc.TimeoutError):
            return DbFailure.BUSY
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return DbFailure.UNAVAILABLE
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate in _SQLSTATES:
                return _SQLSTATES[sqlstate]
            if sqlstate.startswith("08"):  # connection_exception
                return DbFailure.UNAVAILABLE
        if isinstance(exc, OSError):  # refused, reset, connect timeout
            return DbFailure.UNAVAILABLE
        if type(exc).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and "closed" in str(exc):
            return DbFailure.UNAVAILABLE
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return None


T = TypeVar("T")

# PostgreSQL cancels a transaction to break a deadlock (40P01) or a serialization conflict (40001); the same
# transaction run again may well succeed (the other one has gone on meanwhile).
RETRIED_SQLSTATES = frozenset({"40P01", "40001"})
RETRY_ATTEMPTS = 3


def is_retryable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or anything in its cause chain) is PostgreSQL cancelling the transaction to break a
    deadlock or a serialization conflict."""
    seen = 0
    while exc is not None and seen < 8:
        seen += 1
        if getattr(exc, "sqlstate", None) in RETRIED_SQLSTATES:
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


async def retrying(run: Callable[[], Awaitable[T]], *, attempts: int = RETRY_ATTEMPTS) -> T:
    """``run`` (one whole unit of work: everything it wrote rolled back when it fails) again, up to ``attempts``
    times in all, when PostgreSQL cancelled it to break a deadlock or a serialization conflict. For use-cases
    whose unit of work can run twice with the same outcome: batches whose items are idempotent, which lock the
    customers they write in id order (migration 0028) but can still meet a transaction that locks them in
    another order. Any other error, or the last attempt's, propagates."""
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except Exception as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            log.info(
                "transaction cancelled by PostgreSQL (%s), attempt %d of %d: running it again",
                type(exc).__name__,
                attempt,
                attempts,
            )
            await asyncio.sleep(0.005 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class PoolStatus:
    size: int
    max_overflow: int
    checked_out: int
    checked_in: int
    overflow: int

    @property
    def capacity(self) -> int:
        return self.size + max(self.max_overflow, 0)

    @property
    def exhausted(self) -> bool:
        return self.max_overflow >= 0 and self.checked_out >= self.capacity


def pool_status(engine: AsyncEngine) -> PoolStatus:
    pool: Any = engine.sync_engine.pool
    return PoolStatus(
        size=int(pool.size()),
        max_overflow=int(getattr(pool, "_max_overflow", 0)),
        checked_out=int(pool.checkedout()),
        checked_in=int(pool.checkedin()),
        overflow=max(int(pool.overflow()), 0),
    )


# listeners of the statements RequestDb.read_value sends on the driver connection, by id of the sync engine
# (SQLAlchemy's events do not see them): StatementCounter
_DRIVER_LISTENERS: dict[int, list[Callable[[str], None]]] = {}


class StatementCounter:
    """Counts SQL statements sent through an engine (tests and benchmarks): SQLAlchemy's and the reads
    ``RequestDb.read_value`` sends on the driver connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.statements: list[str] = []
        self._engine = engine

    def _on_execute(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1
        self.statements.append(str(args[2]))

    def _on_driver(self, sql: str) -> None:
        self.count += 1
        self.statements.append(sql)

    def __enter__(self) -> StatementCounter:
        event.listen(self._engine.sync_engine, "before_cursor_execute", self._on_execute)
        _DRIVER_LISTENERS.setdefault(id(self._engine.sync_engine), []).append(self._on_driver)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._engine.sync_engine, "before_cursor_execute", self._on_execute)
        key = id(self._engine.sync_engine)
        listeners = _DRIVER_LISTENERS.get(key, [])
        if self._on_driver in listeners:
            listeners.remove(self._on_driver)
        if not listeners:
            _DRIVER_LISTENERS.pop(key, None)


class _DriverStatement:
    """A text() statement as asyncpg takes it: its SQL with ``$n`` placeholders and the names of its
    parameters in order (compiled once per statement object)."""

    __slots__ = ("names", "sql")

    def __init__(self, statement: TextClause, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())


_DRIVER_STATEMENTS: weakref.WeakKeyDictionary[TextClause, _DriverStatement] = weakref.WeakKeyDictionary()


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

    async def read_value(self, statement: TextClause, params: dict[str, Any]) -> Any:
        """The first column of the first row of a read-only ``text()`` statement, sent on the driver
        connection itself (``_on_driver``): one round trip, no BEGIN and ROLLBACK around it when no
        transaction is open (a single statement is atomic on its own), no SQLAlchemy result machinery."""
        return await self._on_driver(statement, params, write=False)

    async def write_one(self, statement: TextClause, params: dict[str, Any]) -> None:
        """A write that is one statement on its own (the sensitive-read audit row): committed by itself in
        one round trip, on the driver connection. A transaction SQLAlchemy holds open on the connection
        (the reads of a query) is committed first, as ``unit_of_work`` does, so the write never rides on
        a transaction that ``close`` rolls back."""
        await self._on_driver(statement, params, write=True)

    async def _on_driver(self, statement: TextClause, params: dict[str, Any], *, write: bool) -> Any:
        """asyncpg prepares the statement once per connection (its statement cache). A failure that is not
        PostgreSQL's answer (a lost connection, a cancelled request) invalidates the connection, so the
        pool never hands it out again; a statement PostgreSQL refused (a timeout) leaves it usable."""
        async with self._lock:
            conn = await self._connection()
            if write and conn.in_transaction():
                await conn.commit()
            sync = conn.sync_connection
            assert sync is not None
            prepared = _DRIVER_STATEMENTS.get(statement)
            if prepared is None:
                prepared = _DRIVER_STATEMENTS[statement] = _DriverStatement(statement, sync.dialect)
            listeners = _DRIVER_LISTENERS.get(id(sync.engine))
            for listener in listeners or ():
                listener(prepared.sql)
            driver = sync.connection.driver_connection
            assert driver is not None  # a checked-out connection's asyncpg connection
            args = [params[name] for name in prepared.names]
            try:
                if write:
                    return await driver.execute(prepared.sql, *args)
                return await driver.fetchval(prepared.sql, *args)
            except BaseException as exc:
                if not isinstance(exc, asyncpg.PostgresError):
                    with suppress(Exception):
                        await conn.invalidate()  # close() still gives the (now empty) checkout back
                raise

    async def execute_autocommit(self, statement: Executable, params: Any = None) -> Result[Any]:
        """One statement committed on its own, in one round trip (no BEGIN/COMMIT): for small
        bookkeeping writes such as a rate-limit charge. The connection goes back to its usual
        isolation afterwards (and the pool resets it anyway when the connection is returned)."""
        async with self._lock:
            conn = await self._connection()
            if conn.in_transaction():
                await conn.commit()
            default = conn.sync_connection.default_isolation_level if conn.sync_connection else None
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                result = await conn.execute(statement, params)
            except BaseException:
                with suppress(Exception):
                    await conn.rollback()  # only SQLAlchemy's bookkeeping: the original error stays
                raise
            await conn.commit()  # ends SQLAlchemy's bookkeeping; PostgreSQL has committed already
            await conn.execution_options(isolation_level=default or "READ COMMITTED")
            return result

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
                    with suppress(Exception):  # a dead connection can't roll back: keep the first error
                        await conn.rollback()
                raise
            else:
                if conn.in_transaction():
                    if uow.committed:
                        await conn.commit()
                    else:
                        await conn.rollback()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        """Give the connection back to the pool, whatever state it is in: a connection whose rollback
        fails (killed, broken) is invalidated, so the pool replaces it instead of handing it out."""
        if self._cm is not None and self._conn is not None:
            conn, cm = self._conn, self._cm
            self._conn = self._cm = None
            try:
                if conn.in_transaction():
                    await conn.rollback()
            except Exception as exc:
                log.warning("connection dropped at the end of a request (%s)", type(exc).__name__)
                with suppress(Exception):
                    await conn.invalidate()
            with suppress(Exception):
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
