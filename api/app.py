"""The Starlette application: authentication at the edge, one GraphQL endpoint, health checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from api.auth import AuthError, authenticate
from api.context import Context
from api.errors import UNAUTHENTICATED, format_error
from api.loaders import Loaders
from api.schema import build_schema
from authz.principal import Principal, PrincipalKind
from authz.service import AuthzService
from infra.db import RequestDb, create_engine
from infra.embedded import resolve_database_url
from infra.jobs import JobDeps, create_job_app, registrars, run_worker
from infra.migrate import schema_state
from infra.repos import authz as authz_repo
from infra.repos.base import Scope as RowScope
from infra.settings import Settings

log = logging.getLogger("tierwise")
ANONYMOUS = Principal(PrincipalKind.USER, "anonymous")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class SchemaBehind(RuntimeError):
    pass


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    authz: AuthzService
    jobs: procrastinate.App

    @property
    def graphiql(self) -> bool:
        return not self.settings.is_production


class AuditSensitiveReads(SchemaExtension):
    """After execution, before the response leaves: one audit row per request that carried unmasked
    sensitive fields (who, which customers, which fields, request id); then the connection goes back."""

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        yield
        ctx: Context = self.execution_context.context
        try:
            if ctx.sensitive_reads:
                fields = sorted({f for fs in ctx.sensitive_reads.values() for f in fs})
                async with ctx.db.unit_of_work() as uow:
                    await authz_repo.write_audit(
                        uow,
                        actor=ctx.actor,
                        action="sensitive_read",
                        request_id=ctx.request_id,
                        target_type="Customer",
                        target_ids=sorted(str(c) for c in ctx.sensitive_reads),
                        fields=fields,
                    )
                    uow.commit()
        finally:
            await ctx.db.close()


class TierwiseGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services) -> None:
        production = services.settings.is_production
        super().__init__(
            build_schema([AuditSensitiveReads]),
            graphql_ide=None if production else "graphiql",
            allow_queries_via_get=True,
        )
        self.services = services

    async def get_context(self, request: Any, response: Any) -> Context:
        s = self.services
        # Only GraphiQL's page passes the edge without a principal, and it executes nothing; should
        # anything else ever get here, it runs as nobody: no roles, every guarded field denied.
        principal: Principal = getattr(request.state, "principal", None) or ANONYMOUS
        decisions = s.authz.store.decisions_for(principal.roles, principal.scopes)
        db = RequestDb(s.engine.connect)
        scope = RowScope(partner_id=principal.partner_id)
        return Context(
            request=request,
            response=response,
            settings=s.settings,
            services=s,
            db=db,
            principal=principal,
            decisions=decisions,
            scope=scope,
            loaders=Loaders(db, decisions, scope),
            request_id=request.state.request_id,
        )

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        out: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            out["errors"] = [format_error(e, request.state.request_id) for e in result.errors]  # type: ignore[typeddict-item]
        return out

    def encode_json(self, data: object) -> bytes:  # type: ignore[override]
        return orjson.dumps(data)


class EdgeMiddleware:
    """Request id in and out; bearer token → Principal before GraphQL runs (401 with
    UNAUTHENTICATED and no data otherwise). GraphiQL's page itself needs no token."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        params = {k for k, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)}
        is_ide_page = (
            self.services.graphiql
            and scope["method"] == "GET"
            and "text/html" in headers.get("accept", "")
            and not params & {"query", "variables", "operationName", "extensions"}
        )
        if not is_ide_page:
            try:
                state["principal"] = await authenticate(
                    headers.get("authorization"),
                    settings=self.services.settings,
                    engine=self.services.engine,
                    store=self.services.authz.store,
                )
            except AuthError as exc:
                body = {"errors": [{"message": str(exc), "extensions": {"code": UNAUTHENTICATED}}]}
                response = Response(
                    orjson.dumps(body),
                    status_code=401,
                    media_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="tierwise"'},
                )
                await response(scope, receive, send_with_id)
                return
        await self.app(scope, receive, send_with_id)


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> Starlette:
    settings = settings or Settings()
    holder: dict[str, Services] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        url = database_url or resolve_database_url(settings)
        engine = create_engine(url, settings)
        state = await schema_state(engine)
        if not state.is_current:
            await engine.dispose()
            raise SchemaBehind(
                f"database schema is at {state.current or 'nothing'}, the code needs {state.head}: "
                "run `tierwise migrate`"
            )
        authz = AuthzService(engine)
        await authz.start()
        jobs = create_job_app(url, JobDeps(engine=engine, settings=settings), registrars())
        await jobs.open_async()
        worker = (
            asyncio.create_task(run_worker(jobs, settings), name="tierwise-worker") if settings.run_worker else None
        )
        services = Services(settings=settings, engine=engine, authz=authz, jobs=jobs)
        holder["services"] = services
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()  # procrastinate lets running jobs finish, then stops
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await jobs.close_async()
            await authz.stop()
            await engine.dispose()

    async def readyz(_request: Request) -> Response:
        services = holder.get("services")
        if services is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            state = await schema_state(services.engine)
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        if not state.is_current:
            return JSONResponse({"status": "unavailable", "schema": state.current, "head": state.head}, status_code=503)
        return JSONResponse({"status": "ready", "schema": state.current, "policyVersion": services.authz.store.version})

    graphql_app = _LazyGraphQL(holder)
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.services = holder
    return app


class _LazyGraphQL:
    """The GraphQL endpoint, built at startup (it needs the engine and the policy)."""

    def __init__(self, holder: dict[str, Services]) -> None:
        self._holder = holder
        self._app: ASGIApp | None = None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:  # type: ignore[override]
        if self._app is None:
            services = self._holder["services"]
            self._app = EdgeMiddleware(TierwiseGraphQL(services), services)
        return self._app(scope, receive, send)
