"""Pure rules behind safe writes: replay comparison (domain/idempotency.py), locale normal form and
the over-long input message (domain/limits.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from domain.customers import normalize_customer
from domain.errors import Invalid, ValidationFailed
from domain.idempotency import check_replay, differences
from domain.limits import TooLong


def test_a_replay_with_equal_values_passes_and_other_values_are_named_in_order() -> None:
    stored = {"amount": Decimal("10.00"), "currency": "EUR", "channel": None}
    check_replay("externalId", stored, {"amount": Decimal("10"), "currency": "EUR", "channel": None})
    assert differences(stored, {"channel": "shop", "amount": Decimal("10"), "currency": "USD"}) == [
        "channel",
        "currency",
    ]
    with pytest.raises(ValidationFailed) as exc:
        check_replay("externalId", stored, {"amount": Decimal("11.00"), "currency": "EUR"})
    assert (exc.value.code, exc.value.field, exc.value.message) == (
        "CONFLICT",
        "externalId",
        "externalId already used with other content (differs in amount)",
    )


def _locale(value: str) -> str:
    out = normalize_customer({"locale": value}, default_region="DE", today=dt.date(2026, 1, 1), creating=False)
    return str(out["locale"])


@pytest.mark.parametrize(
    ("given", "stored"),
    [("en-GB", "en_GB"), ("en_us", "en_US"), ("ZH-hANT-tw", "zh_Hant_TW"), ("es-419", "es_419"), ("fil", "fil")],
)
def test_bcp47_tags_are_stored_in_cldr_normal_form(given: str, stored: str) -> None:
    assert _locale(given) == stored


@pytest.mark.parametrize("given", ["english", "en-XX", "en-US-u-ca-gregory", "x-private", "en GB", "-en", "i-klingon"])
def test_malformed_or_unknown_locales_are_refused(given: str) -> None:
    with pytest.raises(Invalid) as exc:
        _locale(given)
    assert [e.field for e in exc.value.errors] == ["locale"]


def test_too_long_names_the_input_without_its_path() -> None:
    assert TooLong("purchases[3].externalId", 100, 101).message == "externalId has at most 100 characters (got 101)"
    assert TooLong("partner", 200, 9000).message == "partner has at most 200 characters (got 9000)"
