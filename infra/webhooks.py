"""Webhook deliveries on procrastinate: one job per attempt, signed as Standard Webhooks says.

The outbox trigger (migration 0016) queues the first attempt of every delivery in the transaction of its
event. An attempt (``deliver``), in one transaction:

1. takes the delivery row (``FOR UPDATE SKIP LOCKED``: one attempt at a time), skips it unless pending;
2. checks the target again: https in production, and every address the host resolves to now must be
   public unless ``TIERWISE_WEBHOOK_ALLOW_PRIVATE_TARGETS`` (SSRF; the connection then goes to the address
   checked, with the host name kept for the ``Host`` header and TLS, so a second resolution can't differ);
3. POSTs ``{"type", "timestamp", "data"}`` with ``webhook-id`` (the event id: the same on every retry,
   for the receiver to drop duplicates), ``webhook-timestamp`` and ``webhook-signature``
   (``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` under the endpoint's ``whsec_`` secret, by the
   ``standardwebhooks`` package); redirects are not followed;
4. records the attempt: a 2xx delivers; anything else queues the next attempt after an exponential
   backoff (``domain.events.retry_delay_s``), in the same transaction, until ``webhook_max_attempts``,
   then fails the delivery (``replayWebhookDelivery`` queues it again). The endpoint counts failed
   attempts in a row and is disabled when they reach ``webhook_disable_after``.

Retention: a periodic job (``TIERWISE_EVENT_RETENTION_CRON``) deletes the events older than
``event_retention_days`` none of whose deliveries is pending, with their delivery log, in short batches;
and the finished procrastinate jobs of the webhook queue as old (one per attempt). Without it the outbox
and the log grow with every change for ever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from domain.errors import ValidationFailed
from domain.events import address_refused, parse_target, retry_delay_s
from infra.job_deps import JobDeps
from infra.repos import events as repo
from infra.settings import Settings

log = logging.getLogger("tierwise.webhooks")

MAX_ERROR_LENGTH = 300


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None


def payload(event_type: str, occurred_at: dt.datetime, data: dict[str, Any], withheld: Sequence[str] = ()) -> bytes:
    """The body of a delivery: the event's type, when it happened and its data (ids and facts only), less
    the keys the endpoint's receiver may not read (``withheld``: ``<event type>:<key>``, migration 0021)."""
    kept = {k: v for k, v in data.items() if f"{event_type}:{k}" not in withheld}
    body = {"type": event_type, "timestamp": occurred_at.astimezone(dt.UTC).isoformat(), "data": kept}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, message_id: str, body: bytes, at: dt.datetime) -> dict[str, str]:
    """The three Standard Webhooks headers of ``body``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body.decode()),
    }


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (an IP literal: itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def post(url: str, headers: dict[str, str], body: bytes, settings: Settings) -> Attempt:
    """One POST of ``body`` to ``url`` under the target rules (module doc, step 2); never raises."""
    try:
        target = parse_target(url, https_only=settings.is_production)
        addresses = await resolve(target.host, target.port)
    except ValidationFailed as exc:
        return Attempt(False, None, exc.message)
    except OSError as exc:
        return Attempt(False, None, f"cannot resolve {target.host}: {exc}")
    if not addresses:
        return Attempt(False, None, f"{target.host} resolves to no address")
    if not settings.webhook_allow_private_targets:
        for address in addresses:
            reason = address_refused(address)
            if reason is not None:
                return Attempt(False, None, f"refused: {target.host} resolves to {reason}")
    address = addresses[0]
    pinned = httpx.URL(url).copy_with(host=address)
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        async with httpx.AsyncClient(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
            response = await client.post(
                pinned,
                content=body,
                headers={**headers, "content-type": "application/json", "host": host_header},
                extensions=extensions,
            )
    except httpx.HTTPError as exc:
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH] or type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Attempt(True, response.status_code, None)
    return Attempt(False, response.status_code, f"answered HTTP {response.status_code}")


async def deliver(engine: AsyncEngine, settings: Settings, delivery_id: UUID) -> str:
    """One attempt of a delivery (module doc); returns what became of it."""
    async with engine.begin() as conn:
        row = await repo.take_delivery(conn, delivery_id)
        if row is None:
            return "busy or gone"
        if row["status"] != "pending":
            return str(row["status"])
        if not row["enabled"]:
            await repo.record_attempt(
                conn, delivery_id, status="failed", status_code=None, error="endpoint disabled", next_attempt_at=None
            )
            return "failed"
        body = payload(row["type"], row["occurred_at"], row["data"], row["withheld"])
        secret = repo.secret_of(row["secret"], row["endpoint_id"])
        headers = signed_headers(secret, str(row["event_id"]), body, dt.datetime.now(dt.UTC))
        attempt = await post(row["url"], headers, body, settings)
        if attempt.ok:
            await repo.record_attempt(
                conn, delivery_id, status="delivered", status_code=attempt.status_code, error=None, next_attempt_at=None
            )
            await repo.endpoint_succeeded(conn, row["endpoint_id"])
            return "delivered"
        attempts = int(row["attempts"]) + 1
        disabled = await repo.endpoint_failed(conn, row["endpoint_id"], disable_after=settings.webhook_disable_after)
        if attempts >= settings.webhook_max_attempts or disabled:
            await repo.record_attempt(
                conn,
                delivery_id,
                status="failed",
                status_code=attempt.status_code,
                error=attempt.error,
                next_attempt_at=None,
            )
            log.warning("webhook delivery %s failed after %d attempts: %s", delivery_id, attempts, attempt.error)
            return "failed"
        wait = retry_delay_s(attempts, base_s=settings.webhook_retry_base_s, max_s=settings.webhook_retry_max_s)
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
        await repo.record_attempt(
            conn,
            delivery_id,
            status="pending",
            status_code=attempt.status_code,
            error=attempt.error,
            next_attempt_at=at,
        )
        await repo.defer_delivery(conn, delivery_id, at)
        return "retrying"


@dataclass(frozen=True)
class Purged:
    events: int
    deliveries: int
    batches: int


async def purge_old_events(engine: AsyncEngine, *, older_than_days: int, batch: int = 5000) -> Purged:
    """Delete the events older than ``older_than_days`` whose deliveries are all finished (delivered or
    failed), with their deliveries, one short transaction per ``batch`` events (row locks only; events
    another transaction holds are skipped until the next run)."""
    events = deliveries = batches = 0
    while True:
        async with engine.begin() as conn:
            gone, logs = await repo.purge_batch(conn, older_than_days=older_than_days, batch=batch)
        if not gone and not logs:
            return Purged(events, deliveries, batches)
        events, deliveries, batches = events + gone, deliveries + logs, batches + 1


def register_jobs(app: procrastinate.App, deps: JobDeps) -> None:
    """One attempt of one webhook delivery per job (queued by the outbox trigger, a retry or a replay); and
    the retention job (module doc), once per tick across instances."""
    settings = deps.settings

    @app.task(name=repo.DELIVER_TASK, queue=repo.WEBHOOK_QUEUE)
    async def webhook_deliver(delivery_id: str) -> str:
        return await deliver(deps.engine, deps.settings, UUID(delivery_id))

    @app.periodic(cron=settings.event_retention_cron, periodic_id="event-retention")
    @app.task(name="tierwise.event_retention", queue="tierwise", queueing_lock="event_retention")
    async def event_retention_job(timestamp: int) -> dict[str, int]:
        days = settings.event_retention_days
        purged = await purge_old_events(deps.engine, older_than_days=days)
        await app.job_manager.delete_old_jobs(
            nb_hours=days * 24,
            queue=repo.WEBHOOK_QUEUE,
            include_failed=True,
            include_cancelled=True,
            include_aborted=True,
        )
        log.info("event retention (%d days): %s", days, purged)
        return {"events": purged.events, "deliveries": purged.deliveries, "batches": purged.batches}
