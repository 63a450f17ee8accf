"""The Starlette application: request id, limits, logs, metrics and traces at the HTTP edge;
authentication before GraphQL; one GraphQL endpoint; health, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import gc
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import procrastinate
from cross_web import HTTPException
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.edge import graphiql
from api.edge.auth import AuthError, VerifiedTokens, authenticate
from api.edge.console import routes as console_routes
from api.edge.documents import TrustedDocuments, document_hash, parse_hash
from api.edge.limits import (
    DocumentCache,
    Limits,
    OperationLimits,
    admission_problem,
    charge,
    validation_rules,
    variables_problem,
)
from api.edge.media import GRAPHQL_RESPONSE, JSON, is_request_error, response_media_type
from api.edge.observability import ROUTES, Metrics, Tracing, job_metrics, request_id_var
from api.edge.ratelimit import AuthFailures, RateLimiter
from api.graphql.compiler import CompiledQueries, CompiledReads
from api.graphql.core.context import Context, Operation
from api.graphql.core.errors import (
    BAD_REQUEST,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    RATE_LIMITED,
    SERVICE_UNAVAILABLE,
    UNAUTHENTICATED,
    UNTRUSTED_DOCUMENT,
    UNTRUSTED_DOCUMENT_MESSAGE,
    document_names,
    format_error,
)
from api.graphql.core.loaders import Loaders
from api.graphql.schema import build_schema
from authz.principal import Principal, PrincipalKind
from authz.service import AuthzService
from infra import crypto
from infra.db import DbFailure, RequestDb, classify_db_error, create_engine, pool_status
from infra.embedded import resolve_database_url
from infra.event_feed import EventFeed
from infra.jobs import JobDeps, create_job_app, registrars, run_worker
from infra.migrate import schema_state
from infra.repos import authz as authz_repo
from infra.repos.base import Scope as RowScope
from infra.settings import Settings

log = logging.getLogger("tierwise")
access_log = logging.getLogger("tierwise.access")
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
    documents: TrustedDocuments
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter | None = None
    auth_failures: AuthFailures | None = None
    events: EventFeed | None = None  # committed events for the subscriptions (infra/event_feed.py)
    verified_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)

    @property
    def graphiql(self) -> bool:
        return not self.settings.is_production


async def audit_sensitive_reads(ctx: Context) -> None:
    """One audit row for a request that carried unmasked sensitive fields (who, which customers,
    which fields, request id), written before the response leaves."""
    if ctx.sensitive_reads:
        fields = sorted({f for fs in ctx.sensitive_reads.values() for f in fs})
        values = {"actor": ctx.actor, "request_id": ctx.request_id, "fields": fields}
        # one statement committed by itself (no BEGIN and COMMIT around it, no SQLAlchemy insert built anew)
        target_ids = sorted(str(c) for c in ctx.sensitive_reads)
        await ctx.db.write_one(authz_repo.SENSITIVE_READ_AUDIT, {**values, "target_ids": target_ids})


class AuditSensitiveReads(SchemaExtension):
    """After execution, before the response leaves: the audit row of unmasked sensitive reads; then
    the connection goes back — also when an exception escapes a later hook (strawberry throws it into
    this generator at its ``yield``: the ``finally`` must enclose the ``yield``, or the request's
    connection stays checked out)."""

    async def on_operation(self) -> AsyncIterator[None]:
        ctx: Context | None = self.execution_context.context
        try:
            yield
            if ctx is not None:
                await audit_sensitive_reads(ctx)
        finally:
            if ctx is not None:
                await ctx.db.close()


class SubscriptionsOnlyOverWebSocket(SchemaExtension):
    """A WebSocket carries subscriptions only: queries and mutations go over HTTP, through the edge's
    checks and one database connection per request."""

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        ctx = ec.context
        if isinstance(ctx, Context) and ctx.websocket:
            if ec.operation_type is not OperationType.SUBSCRIPTION:
                raise GraphQLError(
                    "only subscriptions run over the WebSocket: send queries and mutations over HTTP",
                    extensions={"code": BAD_REQUEST},
                )
        yield


def _errors_are_logged_once(*_args: Any, **_kwargs: Any) -> None:
    """Strawberry would log every error (FORBIDDEN_FIELD included) with its traceback; api/graphql/core/errors.py
    logs the unexpected ones, redacted, once."""


# the request being served (parse_http_body sees only strawberry's adapter of it)
_request_state: contextvars.ContextVar[State] = contextvars.ContextVar("tierwise_request_state")


class UntrustedDocument(Exception):
    """Trusted-documents mode: a document that is not registered (or a hash that is unknown)."""


class PersistedDocumentNotFound(Exception):
    """A hash that is not registered, outside trusted-documents mode: Apollo's automatic persisted
    queries then send the full text (which runs, but is not registered by that)."""


class TierwiseGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services) -> None:
        settings = services.settings
        production = settings.is_production
        self.limits = Limits.from_settings(settings)
        self.documents = DocumentCache()  # this schema's own: parsed and validated once per query text
        limits = functools.partial(
            OperationLimits,
            limits=self.limits,
            limiter=services.limiter,
            documents=self.documents,
            rules=validation_rules(self.limits),
        )
        extensions: list[Any] = [AuditSensitiveReads, limits, SubscriptionsOnlyOverWebSocket]
        # the read compiler (api/graphql/compiler.py); strawberry answers what it does not cover
        self.reads = CompiledReads() if settings.compiled_queries else None
        if self.reads is not None:  # after the limits: a refused operation never runs
            extensions.append(functools.partial(CompiledQueries, reads=self.reads))
        schema = build_schema(extensions)
        self.graphql_schema = schema._schema  # graphql-core's, for the compiled reads answered at the edge
        # strawberry builds the Schema (build_schema); its error logging is replaced on the instance
        schema.process_errors = _errors_are_logged_once  # type: ignore[method-assign]
        super().__init__(
            schema,
            graphql_ide=None if production else "graphiql",
            # queries only (strawberry refuses mutations over GET); the edge refuses GET before this
            # when it is off (EdgeMiddleware)
            allow_queries_via_get=settings.get_queries_allowed,
            multipart_uploads_enabled=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Transport errors (bad JSON or UTF-8, runaway variables, batches, GET mutations…) as JSON
        errors with a code; an untrusted document with one generic error, charged as a refusal.
        A WebSocket goes to strawberry's graphql-transport-ws handler (subscriptions only)."""
        if scope["type"] == "websocket":
            try:
                await super().__call__(scope, receive, send)
            finally:  # the connection the operations of this socket shared (the limits charge through it)
                for task in scope.get("tierwise_tasks", ()):
                    task.cancel()
                for context in scope.get("tierwise_contexts", ()):
                    await context.db.close()
            return
        request = Request(scope=scope, receive=receive)
        state = _request_state.set(request.state)
        try:
            response = None
            if self.reads is not None and scope["method"] == "POST":
                response = await self._compiled(request)
            if response is None:
                response = await self.run(request)
        except HTTPException as exc:
            response = error_response(exc.status_code, exc.reason, BAD_REQUEST)
        except UntrustedDocument:
            response = await self._refuse_untrusted(request)
        except PersistedDocumentNotFound:
            response = error_response(200, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        finally:
            _request_state.reset(state)
        await response(scope, receive, send)

    async def _compiled(self, request: Request) -> Response | None:
        """A read the compiler answers, answered here, without strawberry's request and execution
        machinery (its per-request extensions, execution context, result conversion): the body
        checked and the document resolved as ``parse_http_body`` does, a document that parsed and
        validated before (``DocumentCache``), the operation limits, a compiled plan for the caller's
        decisions with its arguments checked, then the rate-limit charge, one statement per root
        field, the audit of sensitive reads and the response as strawberry's path builds it (same
        bytes, status, headers, logs and metrics). None — before anything was charged or sent —
        when any of that does not hold: strawberry's path answers (or refuses) the request."""
        principal = getattr(request.state, "principal", None)
        reads = self.reads
        if principal is None or reads is None:
            return None
        data = await self.parse_http_body(self.request_adapter_class(request))
        query = data.query
        document = self.documents.get(query)
        if query is None or document is None or data.protocol != "http":
            return None
        s = self.services
        schema = self.graphql_schema
        refused, cost = admission_problem(
            self.limits, self.documents, schema, query, document, data.operation_name, data.variables
        )
        if refused:
            return None
        sub_response = await self.get_sub_response(request)
        decisions = s.authz.store.decisions_of(principal)
        db = RequestDb(s.engine.connect)
        context = Context(
            request=request,
            response=sub_response,
            settings=s.settings,
            services=s,
            db=db,
            principal=principal,
            decisions=decisions,
            scope=RowScope(partner_id=principal.partner_id),
            request_id=request.state.request_id,
        )
        compiler = reads.compiler
        ready = compiler.ready(schema, query, document, data.operation_name, data.variables, context)
        if ready is None:
            return None
        operation = ready.operation
        name = data.operation_name or (operation.name.value if operation.name else None)
        context.operation.name, context.operation.type, context.operation.cost = name, "query", cost
        request.state.graphql = context.operation  # for the access log, metrics and the trace span
        request.state.sub_response = sub_response
        try:
            # what strawberry's path does, hook by hook: the charge (OperationLimits), the statements
            # (CompiledQueries: an unexpected error is the operation's), the audit (AuditSensitiveReads);
            # an exception out of the charge or the audit is the operation's error (Schema.execute)
            try:
                refusal = await charge(s.limiter, context, cost) if s.limiter is not None else None
                if refusal is not None:
                    result = ExecutionResult(data=None, errors=[refusal])
                else:
                    try:
                        answered = await compiler.answer(ready, context)
                    except Exception as exc:
                        answered = GraphQLExecutionResult(None, [GraphQLError(str(exc), original_error=exc)])
                    result = ExecutionResult(data=answered.data, errors=answered.errors)
                await audit_sensitive_reads(context)
            except Exception as exc:
                error = exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
                result = ExecutionResult(data=None, errors=[error])
        finally:
            await db.close()
        return self.create_response(await self.process_result(request, result), sub_response)

    async def _refuse_untrusted(self, request: Request) -> Response:
        self.services.metrics.errors.labels(UNTRUSTED_DOCUMENT).inc()
        request.state.error_codes = [UNTRUSTED_DOCUMENT]
        limiter, principal = self.services.limiter, getattr(request.state, "principal", None)
        if limiter is not None and principal is not None:
            db = RequestDb(self.services.engine.connect)
            try:
                decision = await limiter.penalize(db, principal, self.limits.refusal_cost)
            except Exception as exc:
                if classify_db_error(exc) is None:
                    raise
                decision = None  # the database is away: refuse all the same, uncharged
                log.warning("could not charge an untrusted document (%s)", type(exc).__name__)
            finally:
                await db.close()
            if decision is not None and not decision.allowed:
                retry = decision.retry_after_header
                request.state.error_codes = [RATE_LIMITED]
                return error_response(
                    429,
                    f"rate limit of {decision.limit} points per minute reached; retry in {retry} s",
                    RATE_LIMITED,
                    headers={"Retry-After": retry},
                    retryAfter=int(retry),
                )
        return error_response(400, UNTRUSTED_DOCUMENT_MESSAGE, UNTRUSTED_DOCUMENT)

    async def render_graphql_ide(self, request: Any) -> Response:
        """GraphiQL from the installed packages, nothing from a CDN (api/edge/graphiql.py)."""
        return HTMLResponse(graphiql.page(request.url.path))

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a GET that names a registered document (it carries no ``query``)."""
        params = request.query_params
        return super().should_render_graphql_ide(request) and not ("documentId" in params or "extensions" in params)

    def decode_json(self, data: str | bytes) -> object:
        """orjson: it refuses bad UTF-8 and nesting past 1 024 levels itself (the standard library
        raised UnicodeDecodeError and RecursionError: HTTP 500)."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            reason = str(exc)
            if "UTF-8" in reason:
                raise HTTPException(400, "the request body is not valid UTF-8") from None
            if "depth limit" in reason or "recursion" in reason.lower():
                raise HTTPException(
                    400,
                    "the request nests arrays or objects too deeply (variables may be nested at most "
                    f"{self.limits.max_variables_depth} levels deep)",
                ) from None
            raise HTTPException(400, "Unable to parse request body as JSON") from None

    async def parse_http_body(self, request: Any) -> GraphQLRequestData:
        """One request object (no batches), its variables checked before anything walks them, and
        the document resolved from its hash (``documentId`` or ``extensions.persistedQuery``) or,
        in trusted-documents mode, refused unless registered."""
        data = (
            self.parse_query_params(request.query_params)
            if request.method == "GET"
            else self.parse_json(await request.get_body())
        )
        if isinstance(data, list):
            raise HTTPException(400, "Batching is not enabled: send one operation per request")
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object with query (or documentId) and variables")
        query, variables, extensions = data.get("query"), data.get("variables"), data.get("extensions")
        operation_name = data.get("operationName")
        if not isinstance(query, str | None):
            raise HTTPException(400, "The GraphQL operation's `query` must be a string or null, if provided.")
        if not isinstance(variables, dict | None):
            raise HTTPException(400, "The GraphQL operation's `variables` must be an object or null, if provided.")
        if not isinstance(extensions, dict | None):
            raise HTTPException(400, "The GraphQL operation's `extensions` must be an object or null, if provided.")
        if not isinstance(operation_name, str | None):
            raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null, if provided.")
        problem = variables_problem(variables, self.limits)
        if problem is not None:
            raise HTTPException(400, problem)
        state = _request_state.get()
        query = self._document(query, data.get("documentId"), extensions, state)
        # what the client sent: messages may repeat its names (api.graphql.core.errors.naming_only), and no others
        state.sent_text = f"{query or ''} {orjson.dumps(variables).decode() if variables else ''}"
        return GraphQLRequestData(
            query=query, variables=variables, operation_name=operation_name, extensions=extensions, protocol="http"
        )

    def _document(
        self, query: str | None, document_id: object, extensions: dict[str, Any] | None, state: State
    ) -> str | None:
        """The document to run: the registered text of a hash, or the query sent, which in trusted
        mode must be registered itself (unless the partner token may send arbitrary documents)."""
        documents = self.services.documents
        trusted_only = self.services.settings.trusted_documents_only
        persisted = (extensions or {}).get("persistedQuery")
        if document_id is not None or persisted is not None:
            sent = document_id if document_id is not None else persisted
            wanted = parse_hash(sent.get("sha256Hash") if isinstance(sent, dict) else sent)
            if wanted is None:
                raise HTTPException(
                    400, "a document id is sha256:<64 hex digits> (or extensions.persistedQuery.sha256Hash)"
                )
            registered = documents.get(wanted)
            if registered is None:
                if trusted_only:
                    raise UntrustedDocument
                if query is None:
                    raise PersistedDocumentNotFound
            elif query is None:
                return registered
            if query is not None and document_hash(query) != wanted:
                raise HTTPException(400, "the query's SHA-256 is not the hash sent with it")
            return query
        if query is None or not trusted_only:
            return query
        principal = getattr(state, "principal", None)
        if principal is not None and principal.arbitrary_documents:
            return query
        if not documents.is_registered(query):
            raise UntrustedDocument
        return query

    async def on_ws_connect(self, context: Context) -> None:
        """graphql-transport-ws ``connection_init``: its payload's ``Authorization`` (``Bearer <token>``)
        authenticates the connection as a request's header would; a bad or missing token, or a caller
        out of budget, closes it (4403). The context then holds the caller's principal and decisions."""
        s = self.services
        params = context.connection_params or {}
        header = next((v for k, v in params.items() if k.lower() == "authorization" and isinstance(v, str)), None)
        try:
            principal = await authenticate(header, settings=s.settings, engine=s.engine, store=s.authz.store)
        except AuthError:
            s.metrics.errors.labels(UNAUTHENTICATED).inc()
            raise ConnectionRejectionError from None
        if s.limiter is not None and s.limiter.blocked_for(principal) > 0:
            s.metrics.errors.labels(RATE_LIMITED).inc()
            raise ConnectionRejectionError
        context.principal = principal
        context.decisions = s.authz.store.decisions_of(principal)
        context.scope = RowScope(partner_id=principal.partner_id)
        context.loaders = Loaders(context.db, context.decisions, context.scope)
        watch = asyncio.create_task(self._reauthenticate(context, header), name="ws-reauthenticate")
        context.request.scope.setdefault("tierwise_tasks", []).append(watch)

    async def _reauthenticate(self, context: Context, header: str | None) -> None:
        """A socket lives longer than a request: its token is checked again every
        ``TIERWISE_SUBSCRIPTION_REAUTH_S``; once revoked or expired (or its roles changed), the socket
        is closed (4403)."""
        s = self.services
        while True:
            await asyncio.sleep(s.settings.subscription_reauth_s)
            try:
                principal = await authenticate(header, settings=s.settings, engine=s.engine, store=s.authz.store)
            except AuthError:
                principal = None
            except Exception as exc:  # the database is away: keep the socket, check again next time
                log.warning("could not re-authenticate a WebSocket (%s)", type(exc).__name__)
                continue
            if principal is None or principal.roles != context.principal.roles:
                websocket: WebSocket = context.request  # type: ignore[assignment]
                with contextlib.suppress(Exception):
                    await websocket.close(code=4403, reason="Forbidden")
                return

    async def get_context(self, request: Any, response: Any) -> Context:
        s = self.services
        if isinstance(request, WebSocket):  # nobody until connection_init authenticates (on_ws_connect)
            db = RequestDb(s.engine.connect)
            decisions = s.authz.store.decisions_of(ANONYMOUS)
            context = Context(
                request=request,  # type: ignore[arg-type]
                response=Response(),  # rate-limit headers have nowhere to go on a socket: dropped
                settings=s.settings,
                services=s,
                db=db,
                principal=ANONYMOUS,
                decisions=decisions,
                scope=RowScope(),
                request_id=uuid.uuid4().hex,
                websocket=True,
            )
            request.scope.setdefault("tierwise_contexts", []).append(context)
            return context
        # Only GraphiQL's page passes the edge without a principal, and it executes nothing; should
        # anything else ever get here, it runs as nobody: no roles, every guarded field denied.
        principal: Principal = getattr(request.state, "principal", None) or ANONYMOUS
        decisions = s.authz.store.decisions_of(principal)
        db = RequestDb(s.engine.connect)
        scope = RowScope(partner_id=principal.partner_id)
        context = Context(
            request=request,
            response=response,
            settings=s.settings,
            services=s,
            db=db,
            principal=principal,
            decisions=decisions,
            scope=scope,
            request_id=request.state.request_id,
        )
        request.state.graphql = context.operation  # operation name, type and cost, for logs and metrics
        request.state.sub_response = response
        return context

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        out: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            settings = self.services.settings
            sent = getattr(request.state, "sent_text", None)
            names = document_names(sent) if settings.generic_validation_messages else None
            errors = [
                format_error(e, request.state.request_id, hide_suggestions=settings.is_production, known_names=names)
                for e in result.errors
            ]
            out["errors"] = list[object](errors)  # strawberry's response type holds a list[object]
            operation: Operation | None = getattr(request.state, "graphql", None)
            self.services.metrics.observe_errors(errors, operation.type if operation is not None else None)
            codes = [e["extensions"]["code"] for e in errors]
            request.state.error_codes = codes
            sub = request.state.sub_response
            if SERVICE_UNAVAILABLE in codes and not any((result.data or {}).values()):
                sub.status_code = 503
                sub.headers["Retry-After"] = "1"
            media = getattr(request.state, "response_media_type", JSON)
            if media == GRAPHQL_RESPONSE and is_request_error(result.data, errors):
                del out["data"]  # not executed: no data entry, and a 4xx (api/edge/media.py)
                if sub.status_code in (None, 200):  # (a 429 or 503 stays)
                    sub.status_code = 400
        return out

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None, **extensions: Any
) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _too_many(wait: float, message: str) -> Response:
    retry = str(max(int(wait + 0.999), 1))
    return error_response(
        429, f"{message}; retry in {retry} s", RATE_LIMITED, headers={"Retry-After": retry}, retryAfter=int(retry)
    )


def _answering_as(media: str, send: Send) -> Send:
    """Every JSON response of the endpoint in the media type the client asked for."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                (
                    k,
                    f"{media}; charset=utf-8".encode()
                    if k.lower() == b"content-type" and v.startswith(b"application/json")
                    else v,
                )
                for k, v in message.get("headers", [])
            ]
        await send(message)

    return sending


class EdgeMiddleware:
    """Before GraphQL: only JSON bodies (no form, multipart or text/plain POSTs: CSRF); GET only when
    queries over GET are enabled (405 otherwise); client addresses with too many failed
    authentications are refused (429) before any lookup; bearer token → Principal (401 with
    UNAUTHENTICATED and no data otherwise; 503 if the database can't be asked); callers this
    instance knows to be out of budget are refused here (429), before any parsing. GraphiQL's page
    itself needs no token."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        state = scope.setdefault("state", {})
        state["response_media_type"] = media = response_media_type(headers.get("accept"))
        if media != JSON:
            send = _answering_as(media, send)
        if scope["method"] == "POST":
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media_type != "application/json":
                response = error_response(415, "send GraphQL requests as application/json", BAD_REQUEST)
                await response(scope, receive, send)
                return

        params = {k for k, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)}
        is_ide_page = (
            self.services.graphiql
            and scope["method"] == "GET"
            and "text/html" in headers.get("accept", "")
            and not params & {"query", "variables", "operationName", "extensions", "documentId"}
        )
        if scope["method"] == "GET" and not is_ide_page and not self.services.settings.get_queries_allowed:
            response = error_response(
                405,
                "GraphQL over GET is disabled here: send a POST with Content-Type: application/json",
                BAD_REQUEST,
                headers={"Allow": "POST"},
            )
            await response(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"  # with proxy headers on, uvicorn's forwarded address
        failures = self.services.auth_failures
        if not is_ide_page and failures is not None:
            wait = failures.blocked_for(address)
            if wait > 0:
                self.services.metrics.errors.labels(RATE_LIMITED).inc()
                await _too_many(wait, "too many failed authentications from this address")(scope, receive, send)
                return
        if not is_ide_page:
            try:
                principal = await authenticate(
                    headers.get("authorization"),
                    settings=self.services.settings,
                    engine=self.services.engine,
                    store=self.services.authz.store,
                    verified=self.services.verified_tokens,
                    view_as=headers.get("x-tierwise-view-as"),
                )
            except AuthError as exc:
                if failures is not None:
                    failures.failed(address)
                self.services.metrics.errors.labels(UNAUTHENTICATED).inc()
                response = error_response(
                    401, str(exc), UNAUTHENTICATED, headers={"WWW-Authenticate": 'Bearer realm="tierwise"'}
                )
                await response(scope, receive, send)
                return
            except Exception as exc:
                failure = classify_db_error(exc)
                if failure is None or failure is DbFailure.BAD_INPUT:
                    raise
                self.services.metrics.errors.labels(SERVICE_UNAVAILABLE).inc()
                log.warning("authentication could not reach the database (%s)", failure.value)
                response = error_response(
                    503,
                    f"the service is unavailable; retry shortly (request id {state['request_id']})",
                    SERVICE_UNAVAILABLE,
                    headers={"Retry-After": "1"},
                    retryAfter=1,
                )
                await response(scope, receive, send)
                return
            state["principal"] = principal
            state["subject"] = principal.subject
            limiter = self.services.limiter
            wait = limiter.blocked_for(principal) if limiter is not None else 0.0
            if wait > 0:
                self.services.metrics.rate_limited.labels(principal.kind.value).inc()
                self.services.metrics.errors.labels(RATE_LIMITED).inc()
                await _too_many(wait, "rate limit reached")(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    pass


class HttpEdge:
    """Outermost: request id (in the logs' context and the X-Request-ID header), the body size limit
    (413), a trace span, one access-log line and the HTTP metrics per request — never with the query
    string or body — and a last-resort 500 that names the request id and nothing else."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, tracing: Tracing | None) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        status = {"code": 500, "started": False}
        limit = self.settings.max_body_bytes

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        span_cm = (
            self.tracing.server_span(
                f"{scope['method']} {route}",
                headers,
                {"http.request.method": scope["method"], "url.path": route, "tierwise.request_id": request_id},
            )
            if self.tracing is not None
            else contextlib.nullcontext()
        )
        try:
            with span_cm as span:
                try:
                    declared = int(headers.get("content-length", "0") or 0)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse_large(scope, receive, send_with_id)
                else:
                    try:
                        await self.app(scope, receive_limited, send_with_id)
                    except BodyTooLarge:
                        if not status["started"]:
                            await self._refuse_large(scope, receive, send_with_id)
                    except Exception:
                        log.exception("unhandled error in request %s", request_id)
                        if not status["started"]:
                            response = error_response(500, f"internal error (request id {request_id})", INTERNAL)
                            await response(scope, receive, send_with_id)
                if span is not None:
                    self._annotate(span, state, status["code"])
        finally:
            self._record(scope, state, route, status["code"], time.perf_counter() - started)
            request_id_var.reset(token)

    async def _refuse_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            f"request body over {self.settings.max_body_bytes} bytes",
            PAYLOAD_TOO_LARGE,
            headers={"Connection": "close"},
        )
        self.metrics.errors.labels(PAYLOAD_TOO_LARGE).inc()
        await response(scope, receive, send)

    def _annotate(self, span: Any, state: dict[str, Any], code: int) -> None:
        graphql: Operation = state.get("graphql") or Operation()
        span.set_attribute("http.response.status_code", code)
        if graphql.type:
            name = self.metrics.operation_label(graphql.name)
            span.set_attribute("graphql.operation.type", graphql.type)
            span.set_attribute("graphql.operation.name", name)
            span.update_name(f"{graphql.type} {name}")
        if state.get("error_codes"):
            span.set_attribute("tierwise.error_codes", sorted(set(state["error_codes"])))

    def _record(self, scope: Scope, state: dict[str, Any], route: str, code: int, elapsed: float) -> None:
        self.metrics.http.labels(route, str(code)).inc()
        graphql: Operation = state.get("graphql") or Operation()
        operation_type = graphql.type
        name = self.metrics.operation_label(graphql.name) if operation_type else None
        if operation_type:
            self.metrics.requests.labels(name, operation_type).inc()
            self.metrics.latency.labels(name, operation_type).observe(elapsed)
            if graphql.cost is not None:
                self.metrics.cost.observe(graphql.cost)
        if route in ("/healthz", "/metrics") and code < 400:
            return  # probes and scrapes: counted, not logged
        # the text line says what the JSON fields say: operation, cost, caller and error codes when known
        said = [f"{operation_type} {name}"] if operation_type else []
        said += [f"cost {graphql.cost}"] if graphql.cost is not None else []
        said += [f"by {state['subject']}"] if state.get("subject") else []
        said += [",".join(sorted(set(state["error_codes"])))] if state.get("error_codes") else []
        access_log.info(
            "%s %s %s %.1f ms%s",
            scope["method"],
            scope.get("path", ""),
            code,
            elapsed * 1000,
            "".join(f" {part}" for part in said),
            extra={
                "method": scope["method"],
                "path": scope.get("path", ""),
                "status": code,
                "duration_ms": round(elapsed * 1000, 2),
                "operation": name,
                "operation_type": operation_type,
                "cost": graphql.cost,
                "subject": state.get("subject"),
                "error_codes": sorted(set(state.get("error_codes") or [])) or None,
            },
        )


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> Starlette:
    settings = settings or Settings()
    crypto.configure(crypto.Keyring.from_settings(settings))  # encryption at rest (infra/crypto.py)
    holder: dict[str, Services] = {}
    metrics = Metrics()
    tracing_holder: dict[str, Tracing] = {}

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
        documents = TrustedDocuments(engine, poll_interval_s=settings.documents_poll_interval_s)
        await documents.start()
        jobs = create_job_app(url, JobDeps(engine=engine, settings=settings), registrars())
        await jobs.open_async()
        events = EventFeed(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
        await events.start()
        metrics.watch_pool(engine)
        limiter = RateLimiter(settings, metrics) if settings.rate_limit_enabled else None
        if limiter is not None:
            await limiter.start(engine)
        services = Services(
            settings=settings,
            engine=engine,
            authz=authz,
            jobs=jobs,
            documents=documents,
            metrics=metrics,
            limiter=limiter,
            auth_failures=AuthFailures(settings.auth_failure_limit, settings.auth_failure_window_s),
            events=events,
        )
        holder["services"] = services
        with job_metrics(metrics):
            worker = (
                asyncio.create_task(run_worker(jobs, settings), name="tierwise-worker") if settings.run_worker else None
            )
            if settings.gc_freeze:
                graphql_app.build()  # the schema and its plans' caches belong to what is frozen
                gc.collect()
                gc.freeze()
            try:
                yield
            finally:
                log.info("shutting down: stopping the job worker (running jobs finish first)")
                if worker is not None:
                    worker.cancel()  # procrastinate lets running jobs finish, then stops
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                await jobs.close_async()
                await events.stop()
                if limiter is not None:
                    await limiter.stop()  # its unspent slices go back to the buckets
                await authz.stop()
                await documents.stop()
                metrics.watch_pool(None)
                await engine.dispose()
                tracing = tracing_holder.pop("tracing", None)
                if tracing is not None:
                    tracing.shutdown()
                log.info("shut down cleanly")

    async def readyz(_request: Request) -> Response:
        services = holder.get("services")
        if services is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        pool = pool_status(services.engine)
        pool_body = {"size": pool.size, "capacity": pool.capacity, "checkedOut": pool.checked_out}
        if pool.exhausted:
            # every connection is in use: answer at once rather than queue behind the requests
            body = {"status": "unavailable", "database": "pool exhausted", "pool": pool_body}
            return JSONResponse(body, status_code=503)
        try:
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            state = await schema_state(services.engine)
        except Exception as exc:
            busy = classify_db_error(exc) is DbFailure.BUSY
            body = {"status": "unavailable", "database": "pool exhausted" if busy else "unreachable", "pool": pool_body}
            return JSONResponse(body, status_code=503)
        if not state.is_current:
            return JSONResponse({"status": "unavailable", "schema": state.current, "head": state.head}, status_code=503)
        return JSONResponse(
            {
                "status": "ready",
                "schema": state.current,
                "policyVersion": services.authz.store.version,
                "pool": pool_body,
            }
        )

    async def metrics_endpoint(request: Request) -> Response:
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        if token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error_response(
                    401, "metrics need Authorization: Bearer <TIERWISE_METRICS_TOKEN>", UNAUTHENTICATED
                )
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    graphql_app = _LazyGraphQL(holder)
    app = Starlette(
        routes=[
            *console_routes(),  # the web console (api/edge/console.py), a client of /graphql
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_app),  # subscriptions (graphql-transport-ws)
            *([] if settings.is_production else [Mount(graphiql.ASSETS_PATH, app=graphiql.assets_app())]),
        ],
        lifespan=lifespan,
    )
    tracing = Tracing.from_env()
    if tracing is not None:
        tracing_holder["tracing"] = tracing
    app.add_middleware(HttpEdge, settings=settings, metrics=metrics, tracing=tracing)
    app.state.services = holder
    app.state.metrics = metrics
    return app


class _LazyGraphQL:
    """The GraphQL endpoint, built at startup (it needs the engine and the policy)."""

    def __init__(self, holder: dict[str, Services]) -> None:
        self._holder = holder
        self._app: ASGIApp | None = None

    def build(self) -> ASGIApp:
        if self._app is None:
            services = self._holder["services"]
            self._app = EdgeMiddleware(TierwiseGraphQL(services), services)
        return self._app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        return (self._app or self.build())(scope, receive, send)
