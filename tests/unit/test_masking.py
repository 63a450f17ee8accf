"""The phone mask's country code without parsing (authz/masking.py, ``_country_code``): exactly what
``phonenumbers.parse`` finds, for generated numbers of every length, leading zeros and unknown codes included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from authz.masking import _country_code, _parsed_country_code, mask_phone


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=18))
def test_the_country_code_of_a_phone_is_what_phonenumbers_parse_finds(digits: str) -> None:
    assert _country_code("+" + digits) == _parsed_country_code("+" + digits)


def test_masked_phones_keep_the_country_code_and_the_last_two_digits() -> None:
    assert mask_phone("+4915112345678") == "+49*********78"
    assert mask_phone("+12025550143") == "+1********43"
    assert mask_phone("+35312345678") == "+353******78"
    assert mask_phone("12345678") == "********"
    assert mask_phone("+0000000000123") == "+***********23"  # no country code: only the plus kept
