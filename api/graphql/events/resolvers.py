"""Webhook endpoints and deliveries over GraphQL: thin resolvers over api/usecases/events.py. Access is
the catalogue's (authz/catalogue.py) and the partner scope the use-cases' (infra/repos/scope.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.errors import INTERNAL, coded, query_error
from api.graphql.core.ids import from_global_id
from api.graphql.core.relay import ConnectionBase
from api.graphql.core.resolving import mutate, query
from api.graphql.events.types import (
    DeleteWebhookEndpointPayload,
    DeliveryStatus,
    EventNoticeType,
    EventTypeEnum,
    RegisterWebhookEndpointInput,
    ReplayWebhookDeliveryPayload,
    UpdateWebhookEndpointInput,
    WebhookDeliveryConnection,
    WebhookDeliveryType,
    WebhookEndpointPayload,
    WebhookEndpointType,
)
from api.usecases import events as usecases
from authz.policy import Decisions
from domain.errors import DomainError, NotFound
from infra.repos.base import Executor

P = TypeVar("P")
log = logging.getLogger("tierwise.events")


def _values(items: list[Any] | None) -> list[str] | None:
    return None if items is None else [i.value if isinstance(i, Enum) else str(i) for i in items]


def _partner(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound("no such partner", field="partnerId") from None


def _endpoint_filter(value: str | None) -> UUID | None:
    """A filter by endpoint: an id that names no endpoint matches no delivery (a filter, not a lookup)."""
    if value is None:
        return None
    try:
        return from_global_id(value, "WebhookEndpoint", field="endpointId")[1]
    except NotFound:
        return UUID(int=0)


async def _change(info: Info[Context, None], payload: type[P], fn: Callable[[Executor], Awaitable[P]]) -> P:
    async def run() -> P:
        async with context_of(info).db.unit_of_work() as uow:
            result = await fn(uow.conn)
            uow.commit()
        return result

    return await mutate(payload, run)


def _with_secret(done: usecases.EndpointWithSecret) -> WebhookEndpointPayload:
    return WebhookEndpointPayload(endpoint=WebhookEndpointType.from_row(done.endpoint), secret=done.secret)


@strawberry.type
class EventsQuery:
    @strawberry.field(description="The webhook endpoints the caller reaches (a partner: its own)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def webhook_endpoints(self, info: Info[Context, None]) -> list[WebhookEndpointType] | None:
        ctx = context_of(info)
        return [WebhookEndpointType.from_row(r) for r in await usecases.endpoints(ctx.db, ctx.caller)]

    @strawberry.field(description="The delivery log, newest first: status, attempts, the last answer")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def webhook_deliveries(
        self,
        info: Info[Context, None],
        endpoint_id: strawberry.ID | None = None,
        status: list[DeliveryStatus] | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> WebhookDeliveryConnection | None:
        ctx = context_of(info)

        async def run() -> Any:
            endpoint = _endpoint_filter(endpoint_id)
            q = usecases.DeliveryQuery(endpoint_id=endpoint, statuses=_values(status), first=first, after=after)
            page = await usecases.deliveries(ctx.db, ctx.caller, q, max_page_size=ctx.settings.max_page_size)
            conn: ConnectionBase = WebhookDeliveryConnection.from_page(
                page, "CREATED_DESC", "created_at", WebhookDeliveryType.from_row
            )
            return conn

        return await query(run)


@strawberry.type
class EventsMutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Register a webhook endpoint: its URL, the event types it receives; the signing secret "
        "(Standard Webhooks, `whsec_…`) is made here and shown once. Audited"
    )
    async def register_webhook_endpoint(
        self, info: Info[Context, None], input: RegisterWebhookEndpointInput
    ) -> WebhookEndpointPayload | None:
        ctx = context_of(info)

        async def run(db: Executor) -> WebhookEndpointPayload:
            cmd = usecases.RegisterEndpoint(
                url=input.url,
                event_types=_values(input.event_types) or [],
                partner_id=_partner(input.partner_id),
                description=input.description,
            )
            return _with_secret(await usecases.register_endpoint(db, ctx.caller, ctx.decisions, ctx.settings, cmd))

        return await _change(info, WebhookEndpointPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Change an endpoint's URL, event types or description; re-enable it; "
        "rotate its secret (shown once). Audited"
    )
    async def update_webhook_endpoint(
        self, info: Info[Context, None], input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointPayload | None:
        ctx = context_of(info)

        async def run(db: Executor) -> WebhookEndpointPayload:
            cmd = usecases.UpdateEndpoint(
                id=from_global_id(input.id, "WebhookEndpoint")[1],
                expected_version=input.expected_version,
                url=input.url,
                event_types=_values(input.event_types),
                description=input.description,
                enabled=input.enabled,
                rotate_secret=input.rotate_secret,
            )
            return _with_secret(await usecases.update_endpoint(db, ctx.caller, ctx.decisions, ctx.settings, cmd))

        return await _change(info, WebhookEndpointPayload, run)

    @strawberry.mutation(description="Stop deliveries to an endpoint (pending ones fail; replay them later)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def disable_webhook_endpoint(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> WebhookEndpointPayload | None:
        ctx = context_of(info)

        async def run(db: Executor) -> WebhookEndpointPayload:
            row = await usecases.disable_endpoint(db, ctx.caller, from_global_id(id, "WebhookEndpoint")[1])
            return WebhookEndpointPayload(endpoint=WebhookEndpointType.from_row(row))

        return await _change(info, WebhookEndpointPayload, run)

    @strawberry.mutation(description="Delete an endpoint and its delivery log. Audited")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def delete_webhook_endpoint(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteWebhookEndpointPayload | None:
        ctx = context_of(info)

        async def run(db: Executor) -> DeleteWebhookEndpointPayload:
            await usecases.delete_endpoint(db, ctx.caller, from_global_id(id, "WebhookEndpoint")[1])
            return DeleteWebhookEndpointPayload(deleted_id=id)

        return await _change(info, DeleteWebhookEndpointPayload, run)

    @strawberry.mutation(description="Queue a failed delivery again, with a fresh run of attempts. Audited")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def replay_webhook_delivery(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> ReplayWebhookDeliveryPayload | None:
        ctx = context_of(info)

        async def run(db: Executor) -> ReplayWebhookDeliveryPayload:
            row = await usecases.replay_delivery(db, ctx.caller, from_global_id(id, "WebhookDelivery")[1])
            return ReplayWebhookDeliveryPayload(delivery=WebhookDeliveryType.from_row(row))

        return await _change(info, ReplayWebhookDeliveryPayload, run)


@strawberry.type
class EventsSubscription:
    @strawberry.subscription(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="The events (all types, or those asked for) as they are committed, on any instance: a "
        "partner hears of its own customers only, and of the types whose facts it may read. Over "
        "graphql-transport-ws, with the bearer token in connection_init's payload (Authorization)"
    )
    async def events(
        self,
        info: Info[Context, None],
        types: list[EventTypeEnum] | None = None,
    ) -> AsyncGenerator[EventNoticeType, None]:
        ctx = context_of(info)
        authz, principal = ctx.services.authz, ctx.principal

        def decisions() -> Decisions:
            ctx.decisions = authz.store.decisions_of(principal)  # the policy as it is at this event
            return ctx.decisions

        await ctx.db.close()  # the events come from the feed: no database connection is held while open
        try:
            async for event in usecases.watch(ctx.services.events, ctx.caller, decisions, _values(types)):
                yield EventNoticeType.from_notification(event)
        except DomainError as exc:
            raise query_error(exc) from None
        except Exception:  # over the socket, errors are not masked by the HTTP edge: say nothing of the internals
            log.exception("the events subscription failed")
            raise coded("internal error", INTERNAL) from None
