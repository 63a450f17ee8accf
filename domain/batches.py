"""Write batches (purchases, refunds, benefit uses): the size rule and the per-item check, written once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from domain.errors import ValidationFailed

Item = TypeVar("Item")
Value = TypeVar("Value")


def checked_batch(
    items: Sequence[Item],
    check: Callable[[int, Item], tuple[Value, list[ValidationFailed]]],
    *,
    field: str,
    max_batch: int,
) -> tuple[list[Value], list[ValidationFailed]]:
    """A batch of at least one and at most ``max_batch`` items (else ``ValidationFailed`` on ``field``),
    each checked by ``check(index, item)``: the checked values in order, and every problem of the batch."""
    if not items:
        raise ValidationFailed(f"no {field} given", field=field)
    if len(items) > max_batch:
        raise ValidationFailed(f"at most {max_batch} {field} per batch", field=field)
    values: list[Value] = []
    errors: list[ValidationFailed] = []
    for n, item in enumerate(items):
        value, problems = check(n, item)
        values.append(value)
        errors += problems
    return values, errors
