"""GraphQL types of events out: event types, webhook endpoints and deliveries."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import ConnectionBase, Edge, UserError
from domain.events import DELIVERY_STATUSES, EventType


# The GraphQL enum of event types, built from domain/events.py (``TIER_CHANGED`` is ``tier.changed``): a new
# event type there is a new value here.
def _enum(name: str, members: dict[str, str], **options: Any) -> Any:
    # mypy types a functional Enum only under a literal name and literal members
    values: type[Enum] = Enum(name, members)  # type: ignore[misc]
    return strawberry.enum(values, name=name, **options)


EventTypeEnum = _enum(
    "EventType",
    {t.name: t.value for t in EventType},
    description="What happened: tier.changed (TIER_CHANGED), complaint.sla_breached, complaint.escalated, "
    "churn.risk_raised, customer.merged, customer.erased",
)
DeliveryStatus = _enum("DeliveryStatus", {s.upper(): s for s in DELIVERY_STATUSES})


def event_type(value: str) -> Any:
    return EventTypeEnum(value)


@strawberry.type(name="WebhookEndpoint")
class WebhookEndpointType:
    id: strawberry.ID
    url: str
    event_types: list[EventTypeEnum]  # type: ignore[valid-type]
    partner_id: strawberry.ID | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: dt.datetime | None
    consecutive_failures: int = strawberry.field(description="failed attempts in a row (over all deliveries)")
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> WebhookEndpointType:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", r["id"])),
            url=r["url"],
            event_types=[event_type(t) for t in r["event_types"]],
            partner_id=strawberry.ID(str(r["partner_id"])) if r["partner_id"] else None,
            description=r["description"],
            enabled=r["enabled"],
            disabled_reason=r["disabled_reason"],
            disabled_at=r["disabled_at"],
            consecutive_failures=r["consecutive_failures"],
            created_by=r["created_by"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            version=r["version"],
        )


@strawberry.type(name="WebhookDelivery")
class WebhookDeliveryType:
    id: strawberry.ID
    endpoint_id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(description="also the `webhook-id` header: the same on every retry")
    event_type: EventTypeEnum  # type: ignore[valid-type]
    occurred_at: dt.datetime
    status: DeliveryStatus  # type: ignore[valid-type]
    attempts: int
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> WebhookDeliveryType:
        return cls(
            id=strawberry.ID(to_global_id("WebhookDelivery", r["id"])),
            endpoint_id=strawberry.ID(to_global_id("WebhookEndpoint", r["endpoint_id"])),
            event_id=strawberry.ID(str(r["event_id"])),
            event_type=event_type(r["event_type"]),
            occurred_at=r["occurred_at"],
            status=DeliveryStatus(r["status"]),
            attempts=r["attempts"],
            last_attempt_at=r["last_attempt_at"],
            last_status_code=r["last_status_code"],
            last_error=r["last_error"],
            next_attempt_at=r["next_attempt_at"] if r["status"] == "pending" else None,
            delivered_at=r["delivered_at"],
            created_at=r["created_at"],
        )


@strawberry.type(name="WebhookDeliveryConnection")
class WebhookDeliveryConnection(ConnectionBase):
    edges: list[Edge[WebhookDeliveryType]]


@strawberry.input
class RegisterWebhookEndpointInput:
    url: str = strawberry.field(
        description="https (http outside production); the host must resolve to public "
        "addresses at delivery time unless TIERWISE_WEBHOOK_ALLOW_PRIVATE_TARGETS"
    )
    event_types: list[EventTypeEnum]  # type: ignore[valid-type]
    partner_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="staff: deliver only this partner's customers' events (a partner's own token: its own)",
    )
    description: str | None = None


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    expected_version: int | None = None
    url: str | None = None
    event_types: list[EventTypeEnum] | None = None  # type: ignore[valid-type]
    description: str | None = None
    enabled: bool | None = strawberry.field(
        default=None, description="true re-enables a disabled endpoint and clears its run of failures"
    )
    rotate_secret: bool = strawberry.field(default=False, description="a new secret, shown once in the payload")


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpointType | None = None
    secret: str | None = strawberry.field(
        default=None, description="`whsec_…`: shown once, at registration or rotation; stored encrypted"
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ReplayWebhookDeliveryPayload:
    delivery: WebhookDeliveryType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(name="Event")
class EventNoticeType:
    """An event as a subscription delivers it: ids and non-sensitive facts (``data``, as in a webhook's
    payload); details through the API, under the subscriber's own access."""

    id: strawberry.ID
    type: EventTypeEnum  # type: ignore[valid-type]
    occurred_at: dt.datetime
    customer_id: strawberry.ID | None
    data: JSON

    @classmethod
    def from_notification(cls, event: dict[str, Any]) -> EventNoticeType:
        data = event.get("data") or {}
        return cls(
            id=strawberry.ID(str(event["id"])),
            type=event_type(event["type"]),
            occurred_at=dt.datetime.fromisoformat(event["occurredAt"]),
            customer_id=strawberry.ID(data["customerId"]) if data.get("customerId") else None,
            data=JSON(data),
        )
