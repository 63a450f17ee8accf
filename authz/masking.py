"""Masked forms keep the shape of a value and nothing another field could complete (API.md).

A mask is shown next to everything else the same role sees (the name, the locale, the city, the
birth year...), so it must not leave a part that those fields make guessable: the first letter and the
domain of an e-mail next to the full name gave the address back for half the customers (issue 17,
F4). Each mask below keeps only what the other fields of a customer already tell, or nothing:

- e-mail: only that it is one, and its top-level domain (``***@***.com``);
- phone: the country calling code (the locale tells it) and the last two digits;
- national id: its layout only (letters and digits starred, separators kept);
- birth date: the year; address: the city (neither rebuilds anything on its own);
- amounts: the order of magnitude; free text: its length.

A caller who must confirm a value it is told (a support agent checking a caller's identity) asks
``verifyCustomerIdentity`` (match / no match, rate-limited, audited) instead of seeing more. These are
the only mask functions: the field guard (api/graphql/core/guard.py) applies them from the catalogue, nobody else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

HIDDEN = "***"
_ID_CHARACTER = re.compile(r"[A-Za-z0-9]")


def mask_email(value: str) -> str:
    """``adam.burton@gmail.com`` → ``***@***.com``: the local part and the domain gone (their length
    too), the top-level domain kept."""
    _local, at, domain = value.rpartition("@")
    if not at:
        return HIDDEN
    _, dot, tld = domain.rpartition(".")
    return f"{HIDDEN}@{HIDDEN}.{tld}" if dot and tld else f"{HIDDEN}@{HIDDEN}"


def mask_phone(value: str) -> str:
    """``+4915112345678`` → ``+49*********78``: the country calling code and the last two digits stay,
    the length too; a value that is not E.164 keeps only its last two digits (eight or fewer: nothing)."""
    text = str(value)
    if len(text) <= 8:
        return "*" * len(text)
    head = ""
    if text.startswith("+"):
        code = _country_code(text)
        head = f"+{code}" if code else "+"
    return head + "*" * (len(text) - len(head) - 2) + text[-2:]


def _country_code(text: str) -> int:
    """The country calling code of ``+<digits>`` as ``phonenumbers.parse`` finds it (0: it refuses the
    number). A plain E.164 number (what writes store) takes its code from the table phonenumbers itself
    reads, without parsing the rest (~0.5 µs, not ~28: a page masks 50 phones); anything else is parsed.
    tests/unit/test_masking.py compares the two over generated numbers."""
    digits = text[1:]
    if digits.isascii() and digits.isdigit() and digits[:1] != "0" and 9 <= len(digits) <= 15:
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in COUNTRY_CODE_TO_REGION_CODE:
                return code if 8 <= len(digits) - size <= 14 else _parsed_country_code(text)
    return _parsed_country_code(text)


def _parsed_country_code(text: str) -> int:
    try:
        return int(phonenumbers.parse(text).country_code or 0)
    except phonenumbers.NumberParseException:
        return 0


def mask_id(value: str) -> str:
    """``123-45-6789`` → ``***-**-****``: the layout of an identifier (which country's format) and no
    character of it; the last four digits of a national id are a classic verification secret."""
    return _ID_CHARACTER.sub("*", str(value))


def mask_magnitude(value: Decimal | float | int) -> Decimal:
    """An amount reduced to its order of magnitude (``12 345.67`` → ``10 000``): still a number."""
    amount = Decimal(value)
    if amount <= 0:
        return Decimal(0)
    return Decimal(10) ** (len(str(int(amount))) - 1)


def mask_address(value: Any) -> Any:
    """An address reduced to its city: a mapping to ``{"city": …}``, an address object to a copy with
    every other part empty."""
    if isinstance(value, Mapping):
        return {"city": value.get("city")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        emptied = {f.name: None for f in dataclasses.fields(value) if f.init and f.name != "city"}
        return dataclasses.replace(value, **emptied)
    raise TypeError(f"not an address: {type(value).__name__}")


def mask_birth_date(value: dt.date | str) -> str:
    return str(value)[:4]


def mask_text(value: str) -> str:
    return f"[redacted: {len(value)} characters]"


MASKS: dict[str, Callable[[Any], Any]] = {
    "phone": mask_phone,
    "email": mask_email,
    "id": mask_id,
    "magnitude": mask_magnitude,
    "address": mask_address,
    "year": mask_birth_date,
    "text": mask_text,
}


def masked(name: str, value: Any) -> Any:
    """The mask ``name`` of ``value``. ``None`` stays ``None``; a value that failed its integrity check
    (an exception, see infra/crypto.py) is handed on to be reported, not masked."""
    return value if value is None or isinstance(value, Exception) else MASKS[name](value)
