"""Use-cases of events out: webhook endpoints (register, update, disable, delete), their delivery log and
the replay of a failed delivery. Free of GraphQL: (db, caller, command) -> result, called by the resolvers
(api/graphql/events/) and usable from jobs, the CLI and tests.

Partner confinement: a partner principal's endpoints are its partner's (it cannot name another), it
reaches only them and their deliveries (infra/repos/scope.py), and they receive only its own customers'
events (the fan-out trigger, migration 0016). Staff endpoints receive every event unless registered for
a partner. An event type may be subscribed only by a caller who may read what it reveals
(authz/catalogue.py ``EVENT_REVEALS``): a partner role that can't read churn risk can't hear of it
either. A payload shows only the keys whose facts the receiver may read (``EVENT_DATA``): a subscriber's
decisions at each event; for a webhook, those of the caller who registered or last changed the endpoint,
kept with it as ``withheld`` (a staff member's change of a partner's endpoint keeps what it withheld and
can't change its event types: an admin's decisions never widen what a partner hears). Every change is
audited; the secret is shown once, at registration or rotation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from api.usecases.caller import Caller
from authz.catalogue import EVENT_DATA, EVENT_REVEALS
from authz.policy import Decisions, Level
from domain import events as rules
from domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from infra.repos import events as repo
from infra.repos import scope as readable
from infra.repos.authz import write_audit
from infra.repos.base import Executor, Page
from infra.settings import Settings


@dataclass(frozen=True)
class RegisterEndpoint:
    url: str
    event_types: list[str]
    partner_id: UUID | None = None  # staff only: an endpoint that receives this partner's customers' events
    description: str | None = None


@dataclass(frozen=True)
class UpdateEndpoint:
    id: UUID
    expected_version: int | None = None
    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None  # True re-enables (and clears the run of failures)
    rotate_secret: bool = False


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: dict[str, Any]
    secret: str | None  # only when made or rotated: shown once


@dataclass(frozen=True)
class DeliveryQuery:
    endpoint_id: UUID | None = None
    statuses: list[str] | None = None
    first: int = 20
    after: str | None = None


def may_hear(decisions: Decisions, event_type: str) -> bool:
    """Whether these decisions may read what an event of this type reveals (authz/catalogue.py)."""
    fields = EVENT_REVEALS.get(event_type)
    return fields is not None and all(decisions.read(f) is not Level.DENIED for f in fields)


def _reads(decisions: Decisions, fields: tuple[str, ...]) -> bool:
    return all(decisions.read(f) is not Level.DENIED for f in fields)


def visible_data(decisions: Decisions, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """An event's payload as these decisions may read it: the keys whose facts they deny left out
    (authz/catalogue.py ``EVENT_DATA``; a key not declared there is never shown)."""
    declared = EVENT_DATA.get(event_type, {})
    return {k: v for k, v in data.items() if k in declared and _reads(decisions, declared[k])}


def withheld(decisions: Decisions, types: list[str]) -> list[str]:
    """What an endpoint for ``types`` leaves out of its deliveries under these decisions
    (``<event type>:<key>``, infra/webhooks.py): a webhook has no caller at delivery, so the decisions of
    the caller who registers or changes it are kept with it."""
    return sorted(
        f"{t}:{key}" for t in types for key, fields in EVENT_DATA.get(t, {}).items() if not _reads(decisions, fields)
    )


def _readable_types(types: list[str], decisions: Decisions) -> None:
    refused = [t for t in types if not may_hear(decisions, t)]
    if refused:
        raise Forbidden(f"not allowed to read what these events reveal: {', '.join(refused)}", field="eventTypes")


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > rules.MAX_DESCRIPTION_LENGTH:
        raise ValidationFailed(
            f"a description has at most {rules.MAX_DESCRIPTION_LENGTH} characters", field="description"
        )
    return value or None


async def _audit(db: Executor, caller: Caller, action: str, endpoint: dict[str, Any], **after: Any) -> None:
    await write_audit(
        db,
        actor=caller.actor,
        action=action,
        request_id=caller.request_id,
        target_type="WebhookEndpoint",
        target_ids=[str(endpoint["id"])],
        after={"url": endpoint["url"], "eventTypes": list(endpoint["event_types"]), **after},
    )


async def register_endpoint(
    db: Executor, caller: Caller, decisions: Decisions, settings: Settings, cmd: RegisterEndpoint
) -> EndpointWithSecret:
    target = rules.parse_target(cmd.url, https_only=settings.is_production)
    types = rules.event_types(cmd.event_types)
    _readable_types(types, decisions)
    partner_id = cmd.partner_id
    if caller.scope.partner_id is not None:  # a partner's endpoint is its own partner's
        if partner_id is not None and not readable.reaches(caller.scope, partner_id):
            raise NotFound("no such partner", field="partnerId")
        partner_id = caller.scope.partner_id
    elif partner_id is not None and not await repo.partner_exists(db, partner_id):
        raise NotFound("no such partner", field="partnerId")
    secret = rules.new_secret()
    row = await repo.create_endpoint(
        db,
        url=target.url,
        event_types=types,
        secret=secret,
        partner_id=partner_id,
        description=_description(cmd.description),
        withheld=withheld(decisions, types),
        actor=caller.actor,
    )
    await _audit(db, caller, "webhook_endpoint_registered", row, partnerId=str(partner_id) if partner_id else None)
    return EndpointWithSecret(row, secret)


async def _owned(db: Executor, caller: Caller, endpoint_id: UUID) -> dict[str, Any]:
    row = await repo.endpoint(db, endpoint_id, caller.scope, lock=True)
    if row is None:
        raise NotFound("no such webhook endpoint", field="id")
    return row


async def update_endpoint(
    db: Executor, caller: Caller, decisions: Decisions, settings: Settings, cmd: UpdateEndpoint
) -> EndpointWithSecret:
    row = await _owned(db, caller, cmd.id)
    if cmd.expected_version is not None and cmd.expected_version != row["version"]:
        raise Conflict(f"the endpoint is at version {row['version']}", field="expectedVersion")
    values: dict[str, Any] = {}
    if cmd.url is not None:
        values["url"] = rules.parse_target(cmd.url, https_only=settings.is_production).url
    if cmd.event_types is not None:
        values["event_types"] = rules.event_types(cmd.event_types)
        _readable_types(values["event_types"], decisions)
    if cmd.description is not None:
        values["description"] = _description(cmd.description)
    if cmd.enabled is True:
        values |= {"enabled": True, "disabled_at": None, "disabled_reason": None, "consecutive_failures": 0}
    elif cmd.enabled is False:
        values |= {
            "enabled": False,
            "disabled_at": dt.datetime.now(dt.UTC),
            "disabled_reason": "disabled by " + caller.actor,
        }
    secret = rules.new_secret() if cmd.rotate_secret else None
    if secret is not None:
        values["secret"] = secret
    if values:  # what its receiver may read: as the caller who changes it may (module doc)
        kept = withheld(decisions, list(values.get("event_types", row["event_types"])))
        if row["partner_id"] is not None and caller.scope.partner_id != row["partner_id"]:
            # staff changing a partner's endpoint: the receiver is the partner, whose reach the staff member's
            # decisions don't measure, so it keeps what it withheld, and only its partner chooses what it hears
            if "event_types" in values:
                raise Forbidden(
                    "a partner's endpoint hears what its partner chose: only the partner's token changes its types",
                    field="eventTypes",
                )
            kept = list(row["withheld"])
        if kept != list(row["withheld"]):
            values["withheld"] = kept
    updated = await repo.update_endpoint(db, row["id"], values) if values else row
    changed = sorted(k for k in values if k != "secret") + (["secret"] if secret else [])
    await _audit(db, caller, "webhook_endpoint_updated", updated, changed=changed)
    return EndpointWithSecret(updated, secret)


async def disable_endpoint(db: Executor, caller: Caller, endpoint_id: UUID) -> dict[str, Any]:
    row = await _owned(db, caller, endpoint_id)
    if not row["enabled"]:
        return row
    updated = await repo.update_endpoint(
        db,
        row["id"],
        {"enabled": False, "disabled_at": dt.datetime.now(dt.UTC), "disabled_reason": "disabled by " + caller.actor},
    )
    await _audit(db, caller, "webhook_endpoint_disabled", updated)
    return updated


async def delete_endpoint(db: Executor, caller: Caller, endpoint_id: UUID) -> UUID:
    """The endpoint and its delivery log go; events stay (other endpoints', subscriptions')."""
    row = await _owned(db, caller, endpoint_id)
    await repo.delete_endpoint(db, row["id"])
    await _audit(db, caller, "webhook_endpoint_deleted", row)
    return UUID(str(row["id"]))


async def endpoints(db: Executor, caller: Caller) -> list[dict[str, Any]]:
    return await repo.endpoints(db, caller.scope)


async def deliveries(db: Executor, caller: Caller, query: DeliveryQuery, *, max_page_size: int) -> Page:
    if not 1 <= query.first <= max_page_size:
        raise ValidationFailed(f"first must be between 1 and {max_page_size}", field="first")
    statuses = None
    if query.statuses:
        unknown = sorted(set(query.statuses) - set(rules.DELIVERY_STATUSES))
        if unknown:
            raise ValidationFailed(f"unknown delivery statuses {', '.join(unknown)}", field="status")
        statuses = list(query.statuses)
    f = repo.DeliveryFilter(endpoint_id=query.endpoint_id, statuses=statuses)
    return await repo.deliveries_page(db, caller.scope, f, first=query.first, after=query.after)


async def replay_delivery(db: Executor, caller: Caller, delivery_id: UUID) -> dict[str, Any]:
    """A failed delivery queued again with a fresh run of attempts (its endpoint must be enabled)."""
    found = await repo.delivery(db, delivery_id, caller.scope, lock=True)
    if found is None:
        raise NotFound("no such webhook delivery", field="id")
    if found["status"] != "failed":
        raise Conflict(f"only a failed delivery can be replayed (this one is {found['status']})", field="id")
    endpoint = await repo.endpoint(db, found["endpoint_id"], caller.scope)
    if endpoint is None or not endpoint["enabled"]:
        raise Conflict("the endpoint is disabled: enable it first (updateWebhookEndpoint)", field="id")
    replayed = await repo.replay(db, delivery_id)
    await write_audit(
        db,
        actor=caller.actor,
        action="webhook_delivery_replayed",
        request_id=caller.request_id,
        target_type="WebhookDelivery",
        target_ids=[str(delivery_id)],
        after={"endpoint": str(found["endpoint_id"]), "event": str(found["event_id"])},
    )
    return replayed


# ---------------------------------------------------------------- subscriptions


class EventSource(Protocol):
    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterable[dict[str, Any]]]: ...


async def watch(
    source: EventSource, caller: Caller, decisions: Callable[[], Decisions], types: list[str] | None
) -> AsyncIterator[dict[str, Any]]:
    """The committed events, as they happen, that the caller may hear of: of the ``types`` asked for (all
    when None; asking for one the caller may not read is refused), of its own partner's customers for a
    partner principal, and of the types its decisions *at that event* may read (a grant revoked while
    the subscription is open takes effect at the next event)."""
    wanted = rules.event_types(types) if types is not None else list(rules.EVENT_TYPES)
    if types is not None:
        _readable_types(wanted, decisions())
    async with source.subscribe() as feed:
        async for event in feed:
            if event.get("type") not in wanted:
                continue
            if not readable.reaches(caller.scope, event.get("partnerId")):
                continue
            now = decisions()
            if not may_hear(now, str(event["type"])):
                continue
            yield {**event, "data": visible_data(now, str(event["type"]), event.get("data") or {})}
