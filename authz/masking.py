"""Masked forms keep the shape of a value and little else (API.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any


def mask_phone(value: str) -> str:
    """``+8613812345678`` → ``+86138****5678``: the head and last four digits stay."""
    if len(value) <= 7:
        return "*" * len(value)
    head = 6 if value.startswith("+") else 3
    return value[:head] + "*" * (len(value) - head - 4) + value[-4:]


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return (local[:1] or "*") + "***@" + domain


def mask_tail(value: str) -> str:
    """Keep the last four characters: ``**************1234``."""
    return "*" * max(len(value) - 4, 0) + value[-4:]


def mask_address(value: Mapping[str, Any]) -> dict[str, Any]:
    """An address reduced to its city (and country)."""
    return {"city": value.get("city"), "country": value.get("country")}


def mask_birth_date(value: dt.date | str) -> str:
    return str(value)[:4]


def mask_text(value: str) -> str:
    return f"[redacted: {len(value)} characters]"


MASKS: dict[str, Callable[[Any], Any]] = {
    "phone": mask_phone,
    "email": mask_email,
    "tail": mask_tail,
    "address": mask_address,
    "year": mask_birth_date,
    "text": mask_text,
}
