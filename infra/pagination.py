"""Keyset (cursor) pagination: a page is ``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n+1``.

Deep pages cost the same as the first: no OFFSET anywhere.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import ColumnElement, Select, literal, tuple_

from domain.errors import ValidationFailed


@dataclass(frozen=True)
class SortKey:
    name: str  # stable name written into cursors
    column: ColumnElement[Any]
    tiebreak: ColumnElement[Any]
    descending: bool = False


def encode_cursor(sort: str, value: Any, row_id: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        value = value.isoformat()
    elif isinstance(value, Decimal | UUID):
        value = str(value)
    raw = orjson.dumps([sort, value, str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        name, value, row_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        UUID(row_id) if isinstance(row_id, str) and "-" in row_id else int(row_id)
    except Exception:
        raise ValidationFailed("not a cursor of this list", field="after") from None
    if name != sort:
        raise ValidationFailed("the cursor was made for another ordering", field="after")
    return value, row_id


def _coerce(column: ColumnElement[Any], value: Any) -> Any:
    """A cursor value as the Python type of its column; anything else is not a cursor of this list.

    Strict on purpose: a forged cursor must come back as BAD_USER_INPUT, never reach PostgreSQL as a
    value of the wrong type (an error there would be INTERNAL).
    """
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = None
    try:
        if python_type is dt.datetime:
            if not isinstance(value, str):
                raise ValueError(value)
            parsed = dt.datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise ValueError(value)
            return parsed
        if python_type is Decimal:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError(value)
            number = Decimal(str(value))
            if not number.is_finite():
                raise ValueError(value)
            return number
        if python_type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(value)
            return value
        if python_type is UUID:
            if not isinstance(value, str):
                raise ValueError(value)
            return UUID(value)
        if python_type is str and not isinstance(value, str):
            raise ValueError(value)
    except (ValueError, ArithmeticError):
        raise ValidationFailed("not a cursor of this list", field="after") from None
    return value


def apply_keyset(stmt: Select[Any], key: SortKey, first: int, after: str | None) -> Select[Any]:
    """Order by (key, tiebreak) and start after the cursor. Sort columns are never NULL (coalesced)."""
    if after is not None:
        value, row_id = decode_cursor(after, key.name)
        bound = tuple_(
            literal(_coerce(key.column, value), key.column.type),
            literal(_coerce(key.tiebreak, row_id), key.tiebreak.type),
        )
        current = tuple_(key.column, key.tiebreak)
        stmt = stmt.where(current < bound if key.descending else current > bound)
    if key.descending:
        stmt = stmt.order_by(key.column.desc(), key.tiebreak.desc())
    else:
        stmt = stmt.order_by(key.column.asc(), key.tiebreak.asc())
    return stmt.limit(first + 1)
