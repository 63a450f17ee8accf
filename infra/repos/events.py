"""The outbox and the webhook endpoints: every SQL statement of events out.

Emitting. An event is inserted into ``events`` by the statement (or in the transaction) that makes the
change it reports, so it exists if and only if the change committed. Each change has one place:

- ``tier.changed``: the tier engine's apply statement and the manual override (infra/tiering.py), one
  event per history row that moves a tier (grace rows are not moves);
- ``churn.risk_raised``: the churn upsert (infra/churn.py), when a customer's level rises;
- ``complaint.sla_breached`` / ``complaint.escalated``: the clock statements (infra/repos/clocks.py);
- ``customer.merged`` / ``customer.erased``: merge and erasure (infra/repos/quality.py).

Set-based statements add a data-modifying CTE built by ``insert_sql``; the others call ``emit``. The
payload holds ids (as the API's global ids, so a receiver can ask the API about them with its own token)
and non-sensitive facts only.

Fanning out. The trigger of migration 0016 (``tierwise_events_fan_out``) runs once per inserting
statement, in its transaction: a delivery row and a procrastinate job for every enabled endpoint
subscribed to the type (a partner's endpoint: its own customers' events only), and a NOTIFY on
``tierwise_events`` per event, which PostgreSQL sends only if the transaction commits (the GraphQL
subscriptions of every instance listen to it).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, select, text, update

from domain.events import EventType
from infra import crypto
from infra.pagination import SortKey, apply_keyset
from infra.repos import scope as readable
from infra.repos.base import Executor, Page, Scope, dict_rows, rowcount, to_page
from infra.tables import events, partners, webhook_deliveries, webhook_endpoints

CHANNEL = "tierwise_events"  # NOTIFY channel of committed events (migration 0016)
SECRET_COLUMN = "webhook_endpoints.secret"
WEBHOOK_QUEUE = "tierwise_webhooks"
DELIVER_TASK = "tierwise.webhook_deliver"


def global_id_sql(type_name: str, column: str) -> str:
    """The API's global id (base64url of ``Type:uuid``, unpadded: api/graphql/core/ids.py) of ``column``
    in SQL; NULL for NULL. ``type_name`` and ``column`` are fixed by the code, never input."""
    assert type_name.isidentifier(), type_name
    return (
        f"rtrim(translate(replace(encode(convert_to('{type_name}:' || ({column})::text, 'UTF8'), 'base64'),"
        f" E'\\n', ''), '+/', '-_'), '=')"
    )


def global_id(type_name: str, raw_id: UUID) -> str:
    """The API's global id in Python (the same as api/graphql/core/ids.py ``to_global_id``; a test keeps
    the three equal)."""
    return base64.urlsafe_b64encode(f"{type_name}:{raw_id}".encode()).decode().rstrip("=")


def insert_sql(
    event_type: EventType,
    source: str,
    customer: str,
    data: dict[str, str],
    where: str = "true",
    customers_from: str = "customers",
) -> str:
    """An ``INSERT INTO events … SELECT`` (for a data-modifying CTE) of one ``event_type`` event per row of
    ``source`` (a CTE or table name of the statement, joined as ``s``): ``customer`` is the SQL of the
    customer id in it, ``data`` maps payload keys to SQL expressions over ``s``. The customer's partner is
    looked up (``ec``, in ``customers_from``: the import's staging table for customers the same statement
    inserts, which the statement can't see in ``customers``) for the partner scope of the event; ``where``
    keeps some rows of ``source`` only."""
    pairs = ", ".join(f"'{key}', {expr}" for key, expr in data.items())
    return f"""INSERT INTO events (type, customer_id, partner_id, data)
        SELECT '{event_type.value}', {customer}, ec.partner_id, jsonb_build_object({pairs})
        FROM {source} s LEFT JOIN {customers_from} ec ON ec.id = {customer}
        WHERE {where}
        RETURNING id"""


async def emit(db: Executor, event_type: EventType, customer_id: UUID, data: dict[str, Any]) -> UUID:
    """One event about one customer, in the caller's transaction (ids in ``data`` already global ids)."""
    row = (
        await db.execute(
            text(
                "INSERT INTO events (type, customer_id, partner_id, data)"
                " SELECT :type, c.id, c.partner_id, CAST(:data AS jsonb) FROM customers c WHERE c.id = :customer"
                " RETURNING id"
            ),
            {"type": event_type.value, "customer": customer_id, "data": json.dumps(data)},
        )
    ).one()
    return UUID(str(row.id))


# ---------------------------------------------------------------- reading events


async def events_of(db: Executor, ids: Sequence[UUID]) -> list[dict[str, Any]]:
    return dict_rows(await db.execute(select(events).where(events.c.id.in_(list(ids))).order_by(events.c.seq)))


# ---------------------------------------------------------------- endpoints


_ENDPOINT_COLUMNS = [c for c in webhook_endpoints.c if c.key != "secret"]


async def partner_exists(db: Executor, partner_id: UUID) -> bool:
    return (await db.execute(select(partners.c.id).where(partners.c.id == partner_id))).first() is not None


async def create_endpoint(
    db: Executor,
    *,
    url: str,
    event_types: list[str],
    secret: str,
    partner_id: UUID | None,
    description: str | None,
    actor: str,
    withheld: Sequence[str] = (),  # payload keys its receiver may not read (api/usecases/events.py)
) -> dict[str, Any]:
    endpoint_id = (await db.execute(select(func.gen_random_uuid()))).scalar_one()
    sealed = crypto.current().encrypt(secret, SECRET_COLUMN, endpoint_id)
    row = (
        await db.execute(
            insert(webhook_endpoints)
            .values(
                id=endpoint_id,
                url=url,
                event_types=event_types,
                secret=sealed,
                partner_id=partner_id,
                description=description,
                withheld=list(withheld),
                created_by=actor,
            )
            .returning(*_ENDPOINT_COLUMNS)
        )
    ).one()
    return dict(row._mapping)


async def endpoint(db: Executor, endpoint_id: UUID, scope: Scope, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = select(*_ENDPOINT_COLUMNS).where(webhook_endpoints.c.id == endpoint_id, readable.webhook_endpoints(scope))
    if lock:
        stmt = stmt.with_for_update()
    row = (await db.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def endpoints(db: Executor, scope: Scope) -> list[dict[str, Any]]:
    stmt = select(*_ENDPOINT_COLUMNS).where(readable.webhook_endpoints(scope)).order_by(webhook_endpoints.c.created_at)
    return dict_rows(await db.execute(stmt))


async def update_endpoint(db: Executor, endpoint_id: UUID, values: dict[str, Any]) -> dict[str, Any]:
    """Apply ``values`` (``secret`` in plain text is sealed here); bumps the version."""
    if "secret" in values:
        values = {**values, "secret": crypto.current().encrypt(values["secret"], SECRET_COLUMN, endpoint_id)}
    row = (
        await db.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(**values, version=webhook_endpoints.c.version + 1, updated_at=func.now())
            .returning(*_ENDPOINT_COLUMNS)
        )
    ).one()
    return dict(row._mapping)


async def delete_endpoint(db: Executor, endpoint_id: UUID) -> int:
    return rowcount(await db.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)))


def secret_of(sealed: str, endpoint_id: UUID) -> str:
    return crypto.current().decrypt(sealed, SECRET_COLUMN, endpoint_id)


# ---------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class DeliveryFilter:
    endpoint_id: UUID | None = None
    statuses: list[str] | None = None


_DELIVERY_COLUMNS = [*webhook_deliveries.c, events.c.type.label("event_type"), events.c.occurred_at]


DELIVERY_SORT = SortKey("CREATED_DESC", webhook_deliveries.c.created_at, webhook_deliveries.c.id, descending=True)


async def deliveries_page(db: Executor, scope: Scope, f: DeliveryFilter, *, first: int, after: str | None) -> Page:
    """Newest first (keyset cursors); only deliveries to endpoints the scope reaches."""
    d = webhook_deliveries
    stmt = (
        select(*_DELIVERY_COLUMNS)
        .join(events, events.c.id == d.c.event_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == d.c.endpoint_id)
        .where(readable.webhook_endpoints(scope))
    )
    if f.endpoint_id is not None:
        stmt = stmt.where(d.c.endpoint_id == f.endpoint_id)
    if f.statuses:
        stmt = stmt.where(d.c.status.in_(f.statuses))
    return to_page((await db.execute(apply_keyset(stmt, DELIVERY_SORT, first, after))).all(), first)


async def delivery(db: Executor, delivery_id: UUID, scope: Scope, *, lock: bool = False) -> dict[str, Any] | None:
    d = webhook_deliveries
    stmt = (
        select(*_DELIVERY_COLUMNS)
        .join(events, events.c.id == d.c.event_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == d.c.endpoint_id)
        .where(d.c.id == delivery_id, readable.webhook_endpoints(scope))
    )
    if lock:
        stmt = stmt.with_for_update(of=d)
    row = (await db.execute(stmt)).first()
    return dict(row._mapping) if row else None


# procrastinate's own defer function (migration 0003) on the caller's connection, as in infra/churn.py: the
# job is part of the caller's transaction.
_DEFER_SQL = text("""
SELECT procrastinate_defer_jobs_v1(ARRAY[
    ROW(:queue, :task, 0, NULL, NULL, CAST(:args AS jsonb), CAST(:at AS timestamptz))::procrastinate_job_to_defer_v1])
""")


async def defer_delivery(db: Executor, delivery_id: UUID, at: dt.datetime | None = None) -> None:
    """Queue an attempt of the delivery (now, or at ``at``), in the caller's transaction."""
    await db.execute(
        _DEFER_SQL,
        {
            "queue": WEBHOOK_QUEUE,
            "task": DELIVER_TASK,
            "args": json.dumps({"delivery_id": str(delivery_id)}),
            "at": at,
        },
    )


async def replay(db: Executor, delivery_id: UUID) -> dict[str, Any]:
    """A failed delivery pending again, with a fresh run of attempts, queued now."""
    await db.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(status="pending", attempts=0, next_attempt_at=func.now())
    )
    await defer_delivery(db, delivery_id)
    found = await delivery(db, delivery_id, Scope())
    assert found is not None
    return found


# ---------------------------------------------------------------- the delivery job's statements


async def take_delivery(db: Executor, delivery_id: UUID) -> dict[str, Any] | None:
    """The delivery with its endpoint and event, locked for this attempt (None if another worker holds it,
    or it is gone)."""
    d, w, e = webhook_deliveries, webhook_endpoints, events
    stmt = (
        select(
            d.c.id,
            d.c.status,
            d.c.attempts,
            d.c.endpoint_id,
            w.c.url,
            w.c.secret,
            w.c.enabled,
            w.c.consecutive_failures,
            w.c.withheld,
            e.c.id.label("event_id"),
            e.c.type,
            e.c.data,
            e.c.occurred_at,
        )
        .join(w, w.c.id == d.c.endpoint_id)
        .join(e, e.c.id == d.c.event_id)
        .where(d.c.id == delivery_id)
        .with_for_update(of=[d], skip_locked=True)
    )
    row = (await db.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def record_attempt(
    db: Executor,
    delivery_id: UUID,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: dt.datetime | None,
) -> None:
    await db.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=status,
            attempts=webhook_deliveries.c.attempts + 1,
            last_attempt_at=func.now(),
            last_status_code=status_code,
            last_error=error,
            next_attempt_at=next_attempt_at,
            delivered_at=func.now() if status == "delivered" else None,
        )
    )


async def endpoint_succeeded(db: Executor, endpoint_id: UUID) -> None:
    await db.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.consecutive_failures != 0)
        .values(consecutive_failures=0)
    )


async def endpoint_failed(db: Executor, endpoint_id: UUID, *, disable_after: int) -> bool:
    """Count a failed attempt; disable the endpoint when the run reaches ``disable_after``. True if disabled."""
    w = webhook_endpoints
    row = (
        await db.execute(
            update(w)
            .where(w.c.id == endpoint_id)
            .values(
                consecutive_failures=w.c.consecutive_failures + 1,
                enabled=and_(w.c.enabled, w.c.consecutive_failures + 1 < disable_after),
            )
            .returning(w.c.enabled, w.c.disabled_at)
        )
    ).one()
    if not row.enabled and row.disabled_at is None:
        await db.execute(
            update(w)
            .where(w.c.id == endpoint_id)
            .values(
                disabled_at=func.now(),
                disabled_reason=f"disabled after {disable_after} failed attempts in a row",
                updated_at=func.now(),
                version=w.c.version + 1,
            )
        )
        return True
    return False


# ---------------------------------------------------------------- retention


async def purge_batch(db: Executor, *, older_than_days: int, batch: int) -> tuple[int, int]:
    """Delete up to ``batch`` events that occurred more than ``older_than_days`` days ago and have no
    pending delivery, with their delivery log; returns (events, deliveries) deleted.

    Three statements in the caller's transaction, so a concurrent replay (which makes a failed delivery
    pending again) can't lose its event: (1) lock the old events; (2) delete their finished deliveries (a
    replay then waits on the row and finds it gone); (3) delete the events, re-checking in a new snapshot
    that none has a pending delivery (one replayed before (2) keeps its event)."""
    ids = list(
        (
            await db.execute(
                text(
                    "SELECT e.id FROM events e"
                    " WHERE e.occurred_at < now() - make_interval(days => :days)"
                    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
                    "                 WHERE d.event_id = e.id AND d.status = 'pending')"
                    " ORDER BY e.occurred_at LIMIT :n FOR UPDATE OF e SKIP LOCKED"
                ),
                {"days": older_than_days, "n": batch},
            )
        ).scalars()
    )
    if not ids:
        return 0, 0
    d = webhook_deliveries
    deliveries = rowcount(await db.execute(delete(d).where(d.c.event_id.in_(ids), d.c.status != "pending")))
    pending = select(d.c.id).where(d.c.event_id == events.c.id, d.c.status == "pending").exists()
    gone = rowcount(await db.execute(delete(events).where(events.c.id.in_(ids), ~pending)))
    return gone, deliveries
