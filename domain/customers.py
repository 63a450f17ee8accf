"""Customer data rules: normalisation and validation of every write.

Uses two pure, I/O-free libraries (phonenumbers, email-validator with the
deliverability check off): validating contact data by hand would be worse.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import sys
from collections.abc import Mapping
from typing import Any

import phonenumbers
from babel import Locale
from babel.core import get_locale_identifier, parse_locale
from email_validator import EmailNotValidError, validate_email

from domain import limits
from domain.enums import LIFECYCLE_STAGES
from domain.errors import Invalid, ValidationFailed

# Fields a caller may set on a customer; everything else (owner, tier, version,
# audit columns) is set by the system only.
WRITABLE_FIELDS = (
    "name",
    "email",
    "phone",
    "national_id",
    "birth_date",
    "address",
    "locale",
    "lifecycle_stage",
    "external_ref",
)
ADDRESS_KEYS = ("line1", "line2", "postalCode", "city", "country")  # as stored (JSON)
_NATIONAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]{3,31}$")
_LOCALE_SHAPE = re.compile(r"^[A-Za-z0-9]+([-_][A-Za-z0-9]+)*$")
LOCALE_STORED_MAX = 16  # customers.locale is varchar(16)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")  # control and invisible format characters
ADDRESS_PART_MAX = {"line1": 200, "line2": 200, "postalCode": 16, "city": 100, "country": 2}


# The check of an address's domain (IDNA, label syntax, special-use names) is a pure function of the domain
# and more than half of what ``validate_email`` costs; a bulk import of 100 000 customers has a handful of
# distinct domains. So it is remembered per domain: the same results and the same errors (an error is not
# remembered: it is raised again), at a tenth of the cost. email-validator looks the function up in its
# module at each call.
_email_module = vars(sys.modules["email_validator.validate_email"])
_email_module["validate_email_domain_name"] = functools.lru_cache(maxsize=4096)(
    _email_module["validate_email_domain_name"]
)


def normalize_email(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"not a valid e-mail address: {exc}", field="email") from None


def normalize_phone(value: str, default_region: str) -> str:
    try:
        number = phonenumbers.parse(value.strip(), default_region)
    except phonenumbers.NumberParseException:
        raise ValidationFailed("not a phone number", field="phone") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed("not a valid phone number for its region", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_customer(
    fields: Mapping[str, Any], *, default_region: str, today: dt.date, creating: bool
) -> dict[str, Any]:
    """Return normalised values for the given fields, or raise ``Invalid`` with every problem found."""
    out: dict[str, Any] = {}
    errors: list[ValidationFailed] = []
    unknown = set(fields) - set(WRITABLE_FIELDS)
    for name in sorted(unknown):
        errors.append(ValidationFailed(f"'{name}' cannot be set", field=name))
    if creating and not fields.get("name"):
        errors.append(ValidationFailed("a name is required", field="name"))

    def run(name: str, fn: Any) -> None:
        if name not in fields:
            return
        value = fields[name]
        if value is None:
            if name == "name":
                errors.append(ValidationFailed("a name is required", field="name"))
            else:
                out[name] = None
            return
        try:
            out[name] = fn(value)
        except ValidationFailed as exc:
            errors.append(exc)

    run("name", _name)
    run("email", normalize_email)
    run("phone", lambda v: normalize_phone(v, default_region))
    run("national_id", _national_id)
    run("birth_date", lambda v: _birth_date(v, today))
    run("address", _address)
    run("locale", _locale)
    run("lifecycle_stage", _stage)
    run("external_ref", _external_ref)
    if errors:
        raise Invalid(errors)
    return out


def _name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise ValidationFailed("a name is required", field="name")
    if _CONTROL.search(name):
        raise ValidationFailed("a name cannot contain control or invisible characters", field="name")
    if not any(ch.isalpha() for ch in name):
        raise ValidationFailed("a name needs at least one letter", field="name")
    if len(name) > limits.NAME:
        raise ValidationFailed(f"a name has at most {limits.NAME} characters", field="name")
    return name


def _national_id(value: str) -> str:
    v = value.strip().upper()
    if not _NATIONAL_ID.match(v):
        raise ValidationFailed("a national id is 4 to 32 letters, digits, spaces, '.', '/' or '-'", field="national_id")
    return v


def _birth_date(value: dt.date, today: dt.date) -> dt.date:
    if value > today:
        raise ValidationFailed("a birth date cannot be in the future", field="birth_date")
    if value.year < today.year - 130:
        raise ValidationFailed("a birth date more than 130 years ago is not plausible", field="birth_date")
    return value


def _address(value: Mapping[str, Any]) -> dict[str, str] | None:
    value = {("postalCode" if k == "postal_code" else k): v for k, v in value.items()}
    cleaned = {k: " ".join(str(v).split()) for k, v in value.items() if k in ADDRESS_KEYS and v is not None}
    cleaned = {k: v for k, v in cleaned.items() if v}
    if not cleaned:
        return None
    if "city" not in cleaned or "country" not in cleaned:
        raise ValidationFailed("an address needs at least a city and a country", field="address")
    for key, part in cleaned.items():
        if _CONTROL.search(part):
            raise ValidationFailed("an address cannot contain control characters", field=f"address.{key}")
        if key != "country" and len(part) > ADDRESS_PART_MAX[key]:
            raise ValidationFailed(f"{key} has at most {ADDRESS_PART_MAX[key]} characters", field=f"address.{key}")
    country = cleaned["country"].upper()
    if len(country) != 2 or not country.isalpha():
        raise ValidationFailed("country is an ISO 3166 alpha-2 code such as DE", field="address.country")
    cleaned["country"] = country
    return cleaned


def _locale(value: str) -> str:
    """A BCP 47 language tag (``en-GB``, ``zh-Hant-TW``, ``es-419``, ``de-CH-1996``; ``_`` is accepted
    for ``-``) with known CLDR codes, returned in ONE normal form: CLDR's locale identifier, language
    lower-case, Script title-case, REGION and VARIANT upper-case, joined by ``_`` (``en_GB``,
    ``zh_Hant_TW``). That is the form every stored locale already has (``en_US``), so nothing stored
    needs migrating. Extensions and private use (``-u-``, ``-x-``) are refused."""
    problem = ValidationFailed(
        "a locale is a BCP 47 language tag such as en-GB, en_US or zh-Hant-TW (language, script, region, variant)",
        field="locale",
    )
    if not _LOCALE_SHAPE.match(value.strip()):
        raise problem
    try:
        language, region, script, variant = parse_locale(value.strip().replace("_", "-"), sep="-")[:4]
    except ValueError:
        raise problem from None
    names = _cldr_names()
    unknown = [
        f"{kind} '{code}'"
        for kind, code, known in (
            ("language", language, names.languages),
            ("script", script, names.scripts),
            ("region", region, names.territories),
        )
        if code is not None and code not in known
    ]
    if unknown:
        raise ValidationFailed(f"unknown {', '.join(unknown)} in locale", field="locale")
    if variant is not None and not re.fullmatch(r"[0-9][A-Z0-9]{3}|[A-Z0-9]{5,8}", variant):
        raise problem
    normal: str = get_locale_identifier((language, region, script, variant))
    if len(normal) > LOCALE_STORED_MAX:
        raise ValidationFailed(f"a locale has at most {LOCALE_STORED_MAX} characters", field="locale")
    return normal


def _cldr_names() -> Locale:
    """CLDR's English display names: their keys are the known language, script and region codes."""
    return Locale("en")


def _stage(value: str) -> str:
    if value not in LIFECYCLE_STAGES:
        raise ValidationFailed(f"lifecycle stage is one of {', '.join(LIFECYCLE_STAGES)}", field="lifecycle_stage")
    return value


def _external_ref(value: str) -> str:
    v = value.strip()
    if not v or len(v) > limits.IDENTIFIER:
        raise ValidationFailed(f"an external reference has 1 to {limits.IDENTIFIER} characters", field="external_ref")
    if _CONTROL.search(v):
        raise ValidationFailed("an external reference cannot contain control characters", field="external_ref")
    return v
