"""Masked forms keep the shape of a value and little else (API.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``; ``+8613812345678`` → ``+86138****5678``: a short head and
    the last four digits stay, and at least four digits are always hidden."""
    if len(value) <= 8:
        return "*" * len(value)
    head = min(6 if value.startswith("+") else 3, len(value) - 8)
    return value[:head] + "*" * (len(value) - head - 4) + value[-4:]


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return (local[:1] or "*") + "***@" + domain


def mask_tail(value: str) -> str:
    """Keep the last four characters, never more than half: ``**************1234``."""
    text = str(value)
    keep = min(4, len(text) // 2)
    return "*" * (len(text) - keep) + (text[-keep:] if keep else "")


def mask_magnitude(value: Decimal | float | int) -> Decimal:
    """An amount reduced to its order of magnitude (``12 345.67`` → ``10 000``): still a number."""
    amount = Decimal(value)
    if amount <= 0:
        return Decimal(0)
    return Decimal(10) ** (len(str(int(amount))) - 1)


def mask_address(value: Mapping[str, Any]) -> dict[str, Any]:
    """An address reduced to its city."""
    return {"city": value.get("city")}


def mask_birth_date(value: dt.date | str) -> str:
    return str(value)[:4]


def mask_text(value: str) -> str:
    return f"[redacted: {len(value)} characters]"


MASKS: dict[str, Callable[[Any], Any]] = {
    "phone": mask_phone,
    "email": mask_email,
    "tail": mask_tail,
    "magnitude": mask_magnitude,
    "address": mask_address,
    "year": mask_birth_date,
    "text": mask_text,
}
