"""Data-quality rules without a database: criteria settings, what a merge fills, merge guard rails,
what an erasure searches for."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from domain import quality as q
from domain.errors import Conflict, NotFound, ValidationFailed

S, D = uuid.uuid4(), uuid.uuid4()


def _row(**kw: object) -> dict[str, object]:
    return {"partner_id": None, "deleted_at": None, "merged_into_id": None, "erased_at": None, "version": 1, **kw}


def test_names_are_parsed_in_order_without_repeats() -> None:
    assert q.parse_names(" Email, phone ,email,", q.DUPLICATE_CRITERIA, "X") == ("email", "phone")
    assert q.parse_names("", q.DUPLICATE_CRITERIA, "X") == ()
    with pytest.raises(ValueError, match="X: unknown fax"):
        q.parse_names("email,fax", q.DUPLICATE_CRITERIA, "X")


def test_a_merge_fills_only_what_the_survivor_lacks() -> None:
    survivor = {"email": "a@x.example", "phone": None, "address": None, "locale": "de_DE"}
    duplicate = {"email": "b@x.example", "phone": "+4930", "address": {"city": "Bonn"}, "locale": None}
    assert q.fields_to_fill(survivor, duplicate) == {"phone": "+4930", "address": {"city": "Bonn"}}


@pytest.mark.parametrize(
    ("survivor", "duplicate", "error", "field"),
    [
        (_row(), _row(), ValidationFailed, "duplicateId"),  # same id, see below
        (None, _row(), NotFound, "survivorId"),
        (_row(), _row(deleted_at=dt.datetime.now(dt.UTC)), NotFound, "duplicateId"),
        (_row(merged_into_id=uuid.uuid4()), _row(), Conflict, "survivorId"),
        (_row(), _row(erased_at=dt.datetime.now(dt.UTC)), Conflict, "duplicateId"),
        (_row(), _row(partner_id=uuid.uuid4()), ValidationFailed, "duplicateId"),
    ],
)
def test_merge_guard_rails(
    survivor: dict[str, object] | None, duplicate: dict[str, object], error: type, field: str
) -> None:
    duplicate_id = S if error is ValidationFailed and duplicate.get("partner_id") is None else D
    with pytest.raises(error) as raised:
        q.check_merge(S, duplicate_id, survivor, duplicate)
    assert raised.value.field == field


def test_merge_version_check() -> None:
    with pytest.raises(Conflict, match="now at version 3"):
        q.check_merge(S, D, _row(version=3), _row(), survivor_version=2)
    q.check_merge(S, D, _row(version=3), _row(version=7), survivor_version=3, duplicate_version=7)


def test_erasure_needles() -> None:
    row = {
        "name": "Ida Ek",
        "email": "ida@ek.example",
        "phone": "+4930123",
        "national_id": "X1",  # too short to search for in free text
        "birth_date": dt.date(1990, 1, 2),
        "external_ref": "REF-1",
        "address": {"line1": "Main St 1", "city": "Bonn", "country": "DE"},
    }
    assert q.erasure_needles(row) == ["+4930123", "1990-01-02", "Ida Ek", "Main St 1", "REF-1", "ida@ek.example"]
    assert q.erasure_needles({"name": q.ERASED_NAME}) == []
