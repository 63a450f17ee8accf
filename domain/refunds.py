"""Refunds and returns: what may be refunded of a purchase.

A refund names one purchase and gives back part or all of it: never more than what is left of the purchase
once earlier refunds are taken off (``refundable``). A refund without an amount gives back all that is
left. A purchase refunded to zero no longer counts as an order (``closes``). Money is ``Decimal`` with two
decimals throughout.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from domain.errors import ValidationFailed

CENT = Decimal("0.01")
# Why a purchase was given back: a code, never free text (a plain column must not hold personal data).
REASONS = ("damaged", "not_as_described", "wrong_item", "late", "changed_mind", "price_adjustment", "other")


def refundable(paid: Decimal, refunded_before: Decimal) -> Decimal:
    """What is left to refund of a purchase of ``paid`` with ``refunded_before`` given back already."""
    return max(paid - refunded_before, Decimal(0))


def parse_amount(value: object, *, field: str) -> Decimal:
    """A refund amount as given: positive, finite, with at most two decimals."""
    try:
        amount = Decimal(str(value))
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise ValidationFailed("amount must be positive, with at most 2 decimals", field=field) from None
    return amount


def check_amount(amount: Decimal | None, paid: Decimal, refunded_before: Decimal, *, field: str) -> Decimal:
    """The amount this refund gives back (all that is left when ``amount`` is None); a refund of more than is
    left, or of a purchase refunded in full already, is refused with the figures."""
    left = refundable(paid, refunded_before)
    if left <= 0:
        raise ValidationFailed(f"the purchase of {paid} is refunded in full already", field=field)
    if amount is None:
        return left
    if amount > left:
        raise ValidationFailed(
            f"at most {left} can be refunded (paid {paid}, refunded before {refunded_before})", field=field
        )
    return amount


def closes(amount: Decimal, paid: Decimal, refunded_before: Decimal) -> bool:
    """Does this refund bring the purchase to zero (so it no longer counts as an order)?"""
    return refunded_before + amount >= paid


def clean_reason(reason: str | None, *, field: str = "reason") -> str | None:
    """A reason code of ``REASONS`` (or none)."""
    if reason is None:
        return None
    code = reason.strip().lower()
    if code not in REASONS:
        raise ValidationFailed(f"reason is one of {', '.join(REASONS)}", field=field)
    return code
