"""domain.idempotency.BatchKeys: an external id stored before a batch, or taken by an earlier item of it,
makes an item a replay of that object — a CONFLICT at the item's path when its content differs."""

from __future__ import annotations

from typing import Any

from domain.idempotency import BatchKeys


def _as_given(row: Any) -> dict[str, Any]:
    return {"amount": row["amount"]}


def test_a_new_key_is_no_replay_until_an_accepted_item_takes_it() -> None:
    keys = BatchKeys({})
    assert keys.replay(None, {"amount": 1}, _as_given, where="x[0].externalId") is None
    assert keys.replay("k", {"amount": 1}, _as_given, where="x[0].externalId") is None
    keys.remember("k", 0, {"amount": 1})
    same = keys.replay("k", {"amount": 1}, _as_given, where="x[1].externalId")
    assert same is not None
    assert (same.stored, same.index, same.error) == (None, 0, None)
    other = keys.replay("k", {"amount": 2}, _as_given, where="x[2].externalId")
    assert other is not None
    assert other.index == 0
    assert other.error is not None
    assert (other.error.field, other.error.code) == ("x[2].externalId", "CONFLICT")
    assert "differs in amount" in str(other.error)
    keys.remember(None, 3, {"amount": 3})  # an item without a key takes none
    assert keys.replay("k2", {"amount": 3}, _as_given, where="x[4].externalId") is None


def test_a_stored_key_answers_with_its_row_compared_as_it_was_given() -> None:
    row = {"id": "r1", "amount": 5, "chosen_by_the_system": "x"}
    keys = BatchKeys({"k": row})
    same = keys.replay("k", {"amount": 5}, _as_given, where="x[0].externalId")
    assert same is not None
    assert same.stored is row
    assert same.index is None
    assert same.error is None
    other = keys.replay("k", {"amount": 6}, _as_given, where="x[0].externalId")
    assert other is not None
    assert other.stored is row
    assert other.error is not None


def test_a_replay_is_answered_with_the_stored_row_or_the_earlier_items_answer() -> None:
    row = {"id": 7, "amount": 5}
    keys = BatchKeys({"old": row})
    answers: list[object] = []
    errors: list[object] = []

    def answered(key: str | None, amount: int, n: int) -> bool:
        return keys.answered(
            key, {"amount": amount}, _as_given, where=f"x[{n}].externalId", answers=answers, errors=errors
        )

    assert not answered("new", 1, 0)  # a new key: the caller answers it
    answers.append("new item 0")
    keys.remember("new", 0, {"amount": 1})
    assert answered("old", 5, 1)  # stored before: its row
    assert answered("new", 1, 2)  # taken by item 0: item 0's answer
    assert answers == ["new item 0", row, "new item 0"]
    assert errors == []
    assert answered("new", 2, 3)  # other content: a CONFLICT, still answered
    assert [e.field for e in errors] == ["x[3].externalId"]  # type: ignore[attr-defined]
    assert not answered(None, 1, 4)  # no key, no replay
