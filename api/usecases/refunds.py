"""Use-cases of refunds and returns: record a batch of refunds of purchases (issue 15).

``record_refunds(db, caller, command)`` is free of GraphQL: the resolver (api/graphql/benefits/) decodes
global ids into the command and maps the result out; the CLI, jobs and tests call it alike.

- A refund names a purchase (by id, or by the external id the writer recorded it with) the caller's scope
  reaches: a partner refunds only its own customers' purchases (any other is "no such purchase").
- Full or partial: never more than what is left of the purchase after earlier refunds (domain/refunds.py);
  without an amount, all that is left. Purchases are locked, so two refunds of one purchase in flight at
  once are decided one after the other.
- Idempotent on the writer's external id, like purchases: the same id with the same content is a replay
  (the stored refund is the answer, nothing happens twice); with other content a CONFLICT, nothing written.
- Metrics, tier and churn follow in the same transaction through the one after-change step, with the
  refund's hysteresis (no second tier change the same day) and "after a refund" in the tier history.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from domain import refunds as rules
from domain.batches import checked_batch
from domain.errors import Invalid, NotFound, ValidationFailed
from domain.idempotency import BatchKeys, key_reused
from infra.after_change import after_change
from infra.db import RequestDb, retrying
from infra.repos import refunds as refunds_repo

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class RefundItem:
    """One refund as given: the purchase by id or by the writer's external id (one of them)."""

    purchase_id: UUID | None = None
    purchase_external_id: str | None = None
    external_id: str | None = None
    amount: Decimal | str | None = None  # None: all that is left of the purchase
    reason: str | None = None
    refunded_at: dt.datetime | None = None  # default: now


@dataclass(frozen=True)
class RecordRefunds:
    refunds: list[RefundItem]


@dataclass(frozen=True)
class RecordedRefunds:
    refunds: list[dict[str, Any]]  # each item's refund row (a replay: the stored one)
    inserted: int


def _not_found(message: str, field: str) -> ValidationFailed:
    """Not there, or not the caller's: the same answer for both (a partner learns nothing of others)."""
    error = ValidationFailed(message, field=field)
    error.code = NotFound.code
    return error


def _checked(n: int, item: RefundItem, now: dt.datetime) -> tuple[dict[str, Any], list[ValidationFailed]]:
    where = f"refunds[{n}]"
    errors: list[ValidationFailed] = []
    amount: Decimal | None = None
    if item.amount is not None:
        try:
            amount = rules.parse_amount(item.amount, field=f"{where}.amount")
        except ValidationFailed as exc:
            errors.append(exc)
    try:
        reason = rules.clean_reason(item.reason, field=f"{where}.reason")
    except ValidationFailed as exc:
        errors.append(exc)
        reason = None
    at = item.refunded_at or now
    if at.tzinfo is None:
        errors.append(ValidationFailed("refundedAt needs a time zone", field=f"{where}.refundedAt"))
    elif at > now + dt.timedelta(minutes=5):
        errors.append(ValidationFailed("refundedAt is in the future", field=f"{where}.refundedAt"))
    elif at < EARLIEST:
        errors.append(ValidationFailed("refundedAt is before 1970", field=f"{where}.refundedAt"))
    if (item.purchase_id is None) == (item.purchase_external_id is None):
        errors.append(ValidationFailed("give purchaseId or purchaseExternalId", field=f"{where}.purchaseId"))
    if item.external_id is not None and not 0 < len(item.external_id) <= 100:
        errors.append(ValidationFailed("externalId has 1 to 100 characters", field=f"{where}.externalId"))
    return {"external_id": item.external_id, "amount": amount, "reason": reason, "refunded_at": at}, errors


def _content(purchase_id: UUID | None, values: dict[str, Any], given: RefundItem) -> dict[str, Any]:
    """What a refund was recorded with, by input name: its amount, reason and time only when given."""
    content: dict[str, Any] = {"purchaseId": purchase_id}
    if given.amount is not None:
        content["amount"] = values["amount"]
    if given.reason is not None:
        content["reason"] = values["reason"]
    if given.refunded_at is not None:
        content["refundedAt"] = values["refunded_at"]
    return content


def _stored_content(row: Mapping[str, Any], given: RefundItem) -> dict[str, Any]:
    """What a stored refund was recorded with, as ``_content`` names it for ``given``'s fields."""
    return _content(row["purchase_id"], dict(row), given)


async def record_refunds(db: RequestDb, caller: Caller, cmd: RecordRefunds, *, max_batch: int) -> RecordedRefunds:
    """Record a batch of refunds, all or nothing (any error: nothing is written)."""
    scope = caller.scope
    now = dt.datetime.now(dt.UTC)
    values, errors = checked_batch(
        cmd.refunds, lambda n, item: _checked(n, item, now), field="refunds", max_batch=max_batch
    )
    if errors:
        raise Invalid(errors)

    async def attempt() -> RecordedRefunds:  # run again if PostgreSQL cancels it (infra.db.retrying)
        async with db.unit_of_work() as uow:
            by_ext = await refunds_repo.purchases_by_external_id(
                uow.conn, [i.purchase_external_id for i in cmd.refunds if i.purchase_external_id], scope
            )
            purchase_ids: list[UUID | None] = [
                i.purchase_id if i.purchase_id is not None else by_ext.get(i.purchase_external_id or "")
                for i in cmd.refunds
            ]
            locked = await refunds_repo.lock_purchases(
                uow.conn, [p for p in purchase_ids if p is not None], caller.scope
            )
            stored = await refunds_repo.by_external_id(
                uow.conn, [v["external_id"] for v in values if v["external_id"]], scope
            )
            refunded = {pid: row["refunded_before"] for pid, row in locked.items()}
            new_items: list[dict[str, Any]] = []
            answers: list[Any] = []  # per item: a stored row, or the index of a new item
            keys = BatchKeys(stored)
            for n, (item, v, pid) in enumerate(zip(cmd.refunds, values, purchase_ids, strict=True)):
                where = f"refunds[{n}]"
                content = _content(pid, v, item)
                ext = v["external_id"]
                stored_content = functools.partial(_stored_content, given=item)
                if keys.answered(
                    ext, content, stored_content, where=f"{where}.externalId", answers=answers, errors=errors
                ):
                    continue
                purchase = locked.get(pid) if pid is not None else None
                if pid is None or purchase is None:
                    field = f"{where}.purchaseId" if item.purchase_id is not None else f"{where}.purchaseExternalId"
                    errors.append(_not_found("no such purchase", field))
                    answers.append(None)
                    continue
                try:
                    amount = rules.check_amount(v["amount"], purchase["amount"], refunded[pid], field=f"{where}.amount")
                except ValidationFailed as exc:
                    errors.append(exc)
                    answers.append(None)
                    continue
                if v["refunded_at"] < purchase["purchased_at"]:
                    errors.append(ValidationFailed("refundedAt is before the purchase", field=f"{where}.refundedAt"))
                    answers.append(None)
                    continue
                new_items.append(
                    {
                        **v,
                        "amount": amount,
                        "purchase_id": pid,
                        "customer_id": purchase["customer_id"],
                        "purchased_at": purchase["purchased_at"],
                        "closes_purchase": rules.closes(amount, purchase["amount"], refunded[pid]),
                    }
                )
                refunded[pid] += amount
                answers.append(len(new_items) - 1)
                keys.remember(ext, n, content)
            if errors:
                raise Invalid(errors)
            inserted = await refunds_repo.insert(uow.conn, new_items, scope=scope, actor=caller.actor)
            if len(inserted) != len(new_items):  # an external id taken by a request that committed meanwhile
                taken = {i["external_id"] for i in new_items} - {r["external_id"] for r in inserted}
                raise Invalid(
                    [
                        key_reused("externalId", ["a concurrent request"], where=f"refunds[{n}].externalId")
                        for n, v in enumerate(values)
                        if v["external_id"] in taken
                    ]
                )
            rows = [answer if isinstance(answer, dict) else inserted[answer] for answer in answers]
            if inserted:
                await after_change(uow.conn, [r["customer_id"] for r in inserted], actor=caller.actor, cause="refund")
            uow.commit()
        return RecordedRefunds(refunds=rows, inserted=len(inserted))

    return await retrying(attempt)
