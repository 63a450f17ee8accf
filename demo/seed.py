"""Deterministic demo data: partners, customers in several locales, purchases,
complaints with their event history, teams of staff holding a share of the open
complaints, surveys with invitations and answers.

Everything is generated in Python from one seed (``random.Random`` plus seeded
Faker instances), bulk-loaded with COPY, then metrics are recomputed and every
customer is tiered by the same set-based SQL the service runs, all in one
transaction: a failed seed leaves nothing behind.

Faker is slow per call, so each locale gets pools of names, streets, places and
phone-number templates once; customers are recombined from the pools, and ids,
phones and national ids are drawn from the ``Random`` (valid check digits,
numbers that ``phonenumbers`` accepts).

E-mail addresses use the reserved ``.example`` top-level domain (``gmx.example``,
``163.example``): they look like the locale's mail providers but can never reach
a real person if a developer wires up a mail channel.

Sensitive values (contact fields, complaint descriptions, free-text answers) are
encrypted and their blind indexes computed here, in Python, before COPY: the
database never sees them in plaintext (infra/crypto.py).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import phonenumbers
from faker import Faker
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import enums
from domain.customers import normalize_customer
from domain.enums import SCORE_RANGES
from domain.sla import ACTIVE_STATUSES
from infra import churn, crypto
from infra import tables as t
from infra.metrics import recompute_all
from infra.repos import complaint_work
from infra.tiering import active_policy, retier_all

# Column lists of the bulk COPYs (also used by bench/generate.py).
CUSTOMER_COLUMNS = (
    "id",
    "partner_id",
    "external_ref",
    "name",
    "email",
    "phone",
    "national_id",
    "birth_date",
    "address",
    "locale",
    "lifecycle_stage",
    "consent_email_at",
    "consent_sms_at",
    "consent_phone_at",
    "created_at",
    "updated_at",
)
PURCHASE_COLUMNS = (
    "id",
    "customer_id",
    "partner_id",
    "external_id",
    "amount",
    "currency",
    "channel",
    "purchased_at",
    "created_at",
)
COMPLAINT_COLUMNS = (
    "id",
    "customer_id",
    "partner_id",
    "external_id",
    "subject",
    "description",
    "category_code",
    "root_cause_code",
    "severity",
    "channel",
    "status",
    "assignee",
    "resolution_code",
    "first_responded_at",
    "resolved_at",
    "closed_at",
    "paused_since",
    "paused_seconds",
    "reopen_count",
    "version",
    "opened_at",
    "updated_at",
)
EVENT_COLUMNS = ("id", "complaint_id", "from_status", "to_status", "at", "actor", "note")
HANDOVER_COLUMNS = (*EVENT_COLUMNS, "kind")  # a hand-over to a team: an assignment event, the status unchanged
INVITATION_COLUMNS = ("survey_id", "customer_id", "complaint_id", "channel", "sent_at")
RESPONSE_COLUMNS = (
    "id",
    "survey_id",
    "customer_id",
    "complaint_id",
    "partner_id",
    "external_id",
    "channel",
    "submitted_at",
)
ANSWER_COLUMNS = ("id", "response_id", "question_id", "score", "choices", "text")
BLIND_INDEX_COLUMNS = crypto.BLIND_INDEX_COLUMNS  # (bench/generate.py reads it here)
# Encrypted values are bound to their row's id (infra/crypto.py): event and answer ids are made before the
# COPY (from the identity sequence here, above it in bench/generate.py), and the sequence moved past them.
SYNC_SEQUENCE_SQL = (
    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest(m, "
    "pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')::regclass))) "
    "FROM (SELECT max(id) AS m FROM {table}) x WHERE m IS NOT NULL"
)

COPY_CHUNK = 20_000
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class SeedReport:
    partners: int
    customers: int
    purchases: int
    complaints: int
    complaint_events: int
    teams: int
    team_members: int
    surveys: int
    survey_questions: int
    survey_invitations: int
    survey_responses: int
    survey_answers: int
    customer_metrics: int
    tier_changes: int
    seconds: float

    def table_counts(self) -> dict[str, int]:
        """Rows written per table (every field but ``seconds``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "seconds"}

    def summary(self) -> str:
        """What was loaded, for a person (``tierwise seed`` prints it)."""

        n = _spaced
        return "\n".join(
            (
                f"seeded in {self.seconds:.1f} s:",
                f"  {n(self.partners)} partners, {n(self.customers)} customers, {n(self.purchases)} purchases",
                f"  {n(self.complaints)} complaints with {n(self.complaint_events)} events, "
                f"{n(self.teams)} teams of {n(self.team_members)} staff",
                f"  {n(self.surveys)} surveys ({n(self.survey_questions)} questions), "
                f"{n(self.survey_invitations)} invitations, {n(self.survey_responses)} responses "
                f"({n(self.survey_answers)} answers)",
                f"  metrics of {n(self.customer_metrics)} customers, {n(self.tier_changes)} tier changes",
            )
        )


@dataclass
class _LineTask:
    description: str
    total: int
    completed: int = 0
    quarters_shown: int = 0


class LineProgress:
    """Progress as plain lines, for a log or a pipe, where rich's bar draws nothing: a line when a step
    starts, at every quarter of it, and when it is done. The part of rich's ``Progress`` the seed uses."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._started = time.perf_counter()
        self._tasks: list[_LineTask] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def add_task(self, description: str, total: float) -> int:
        self._tasks.append(_LineTask(description, int(total)))
        self._write(f"{description}: started, {_spaced(int(total))} to do")
        return len(self._tasks) - 1

    def update(self, task: int, *, completed: float) -> None:
        step = self._tasks[task]
        step.completed = int(completed)
        quarter = min(4, 4 * step.completed // step.total) if step.total else 4
        if quarter > step.quarters_shown:
            step.quarters_shown = quarter
            state = "done" if quarter == 4 else f"{25 * quarter} %"
            elapsed = time.perf_counter() - self._started
            self._write(
                f"{step.description}: {_spaced(step.completed)}/{_spaced(step.total)} {state} ({elapsed:.1f} s)"
            )

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, completed=self._tasks[task].completed + advance)


def _spaced(value: int) -> str:
    """12 345: thousands apart, in every locale."""
    return f"{value:,}".replace(",", " ")


async def is_empty(engine: AsyncEngine) -> bool:
    """True when the database holds no customer."""
    async with engine.connect() as conn:
        return not (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM customers)"))).scalar_one()


# --------------------------------------------------------------------------- locales


@dataclass(frozen=True)
class _LocaleSpec:
    locale: str
    country: str
    weight: float
    mail_providers: tuple[str, ...]


LOCALES: tuple[_LocaleSpec, ...] = (
    _LocaleSpec("en_US", "US", 0.27, ("gmail", "yahoo", "outlook", "hotmail", "icloud", "aol")),
    _LocaleSpec("de_DE", "DE", 0.17, ("gmx", "web", "t-online", "gmail", "posteo", "outlook")),
    _LocaleSpec("fr_FR", "FR", 0.13, ("orange", "free", "laposte", "gmail", "sfr", "hotmail")),
    _LocaleSpec("es_ES", "ES", 0.11, ("gmail", "hotmail", "yahoo", "outlook", "telefonica")),
    _LocaleSpec("pt_BR", "BR", 0.11, ("gmail", "hotmail", "uol", "bol", "yahoo")),
    _LocaleSpec("zh_CN", "CN", 0.11, ("qq", "163", "126", "sina", "foxmail")),
    _LocaleSpec("ja_JP", "JP", 0.10, ("gmail", "yahoo", "docomo", "icloud", "ezweb")),
)
MAIL_TLD = "example"  # RFC 2606: reserved, never delivered

# Pinyin of the common Chinese surnames (for e-mail local parts).
_PINYIN = dict(
    zip(
        "王李张刘陈杨黄吴赵周徐孙马朱胡林郭何高罗郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁于余叶蒋杜苏魏程吕丁沈任姚卢傅钟姜崔谭廖范汪",
        """
        wang li zhang liu chen yang huang wu zhao zhou xu sun ma zhu hu lin guo he gao luo zheng liang
        xie song tang xu deng feng han cao zeng peng xiao cai pan tian dong yuan yu yu ye jiang du su wei
        cheng lv ding shen ren yao lu fu zhong jiang cui tan liao fan wang
        """.split(),
        strict=True,
    )
)
_CN_AREAS = (
    "110101",
    "110105",
    "310101",
    "310115",
    "440103",
    "440305",
    "330106",
    "510104",
    "420102",
    "320102",
)
_LINE2 = {
    "de_DE": ("2. OG", "3. OG links", "Hinterhaus", "Whg. 4", "c/o Müller"),
    "fr_FR": ("Bâtiment B", "Appartement 12", "Escalier C", "Résidence Les Tilleuls", "3e étage"),
    "es_ES": ("Piso 2, Puerta 1", "3º B", "Escalera A", "Bajo", "Ático"),
}


@dataclass
class _Pool:
    spec: _LocaleSpec
    male: list[tuple[str, str]]  # (name as written, ascii for e-mails)
    female: list[tuple[str, str]]
    last: list[tuple[str, str]]
    line1: list[str]
    line2: list[str]
    places: list[tuple[str, str]]  # (postal code, city)
    mobile: list[tuple[int, str, int]]  # (country code, national number, trailing digits to vary)
    landline: list[tuple[int, str, int]]


def _ascii(value: str) -> str:
    value = value.replace("ß", "ss").replace("æ", "ae").replace("ø", "o").replace("œ", "oe")
    folded = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum()).lower()


def _unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _build_pool(spec: _LocaleSpec, fake: Faker, size: int) -> _Pool:
    loc = spec.locale
    n = range(size)
    if loc == "ja_JP":
        male = _unique([(p[0], p[2].lower()) for p in (fake.first_name_male_pair() for _ in n)])
        female = _unique([(p[0], p[2].lower()) for p in (fake.first_name_female_pair() for _ in n)])
        last = _unique([(p[0], p[2].lower()) for p in (fake.last_name_pair() for _ in n)])
    elif loc == "zh_CN":
        male = _unique([(fake.first_name_male(), "") for _ in n])
        female = _unique([(fake.first_name_female(), "") for _ in n])
        last = _unique([(s, _PINYIN[s]) for s in (fake.last_name() for _ in n) if s in _PINYIN])
    else:
        male = _unique([(s, _ascii(s)) for s in (fake.first_name_male() for _ in n)])
        female = _unique([(s, _ascii(s)) for s in (fake.first_name_female() for _ in n)])
        last = _unique([(s, _ascii(s)) for s in (fake.last_name() for _ in n)])

    line1: list[str] = []
    line2: list[str] = []
    places: list[tuple[str, str]] = []
    for _ in n:
        num = fake.random_int(1, 180)
        if loc == "en_US":
            line1.append(f"{num * 37 % 9000 + 10} {fake.street_name()}")
            line2.append(fake.secondary_address())
            places.append((fake.postcode(), f"{fake.city()}, {fake.state_abbr()}"))
        elif loc == "de_DE":
            line1.append(f"{fake.street_name()} {num}")
            places.append((fake.postcode(), fake.city_name()))
        elif loc in ("fr_FR", "es_ES"):
            line1.append(fake.street_address().strip())
            places.append((fake.postcode(), fake.city()))
        elif loc == "pt_BR":
            line1.append(f"{fake.street_name()}, {num}")
            line2.append(fake.bairro())
            pc = fake.postcode().replace("-", "")
            places.append((f"{pc[:5]}-{pc[5:]}", f"{fake.city()} / {fake.estado_sigla()}"))
        elif loc == "zh_CN":
            line1.append(f"{fake.district()}区{fake.street_name()}{num}号")
            line2.append(f"{fake.random_int(1, 30)}栋{fake.random_int(1, 28)}0{fake.random_int(1, 8)}室")
            places.append((fake.postcode(), f"{fake.city_name()}市"))
        else:  # ja_JP
            line1.append(f"{fake.town()}{fake.chome()}{fake.ban()}{fake.gou()}")
            line2.append(f"{fake.building_name()}{fake.random_int(101, 1208)}")
            places.append((fake.postcode(), f"{fake.prefecture()}{fake.city()}"))
    line2 = _unique(line2) or list(_LINE2.get(loc, ("",)))

    region = spec.country
    mobile: list[tuple[int, str, int]] = []
    landline: list[tuple[int, str, int]] = []
    for _ in range(size // 2):
        try:
            number = phonenumbers.parse(fake.phone_number(), region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number) or phonenumbers.region_code_for_number(number) != region:
            continue
        nsn = str(number.national_number)
        template = (int(number.country_code or 0), nsn, min(7, len(nsn) - 4))
        kind = phonenumbers.number_type(number)
        is_mobile = kind in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )
        (mobile if is_mobile else landline).append(template)
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is not None:
        nsn = str(example.national_number)
        mobile.append((int(example.country_code or 0), nsn, min(7, len(nsn) - 4)))
    return _Pool(spec, male, female, last, _unique(line1), line2, _unique(places), _unique(mobile), _unique(landline))


def _phone(rng: random.Random, pool: _Pool) -> str:
    templates = pool.mobile if pool.mobile and (not pool.landline or rng.random() < 0.75) else pool.landline
    cc, nsn, vary = rng.choice(templates)
    for _ in range(8):
        digits = nsn[:-vary] + f"{rng.randrange(10**vary):0{vary}d}"
        if phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=cc, national_number=int(digits))):
            return f"+{cc}{digits}"
    return f"+{cc}{nsn}"


def _digits(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(10) for _ in range(n)]


def _steuer_id_check(digits: Sequence[int]) -> int:
    """ISO 7064 MOD 11,10 check digit of a German tax id."""
    product = 10
    for d in digits:
        total = (d + product) % 10 or 10
        product = (total * 2) % 11
    return (11 - product) % 10


def _cpf_checks(digits: Sequence[int]) -> list[int]:
    """The two check digits of a Brazilian CPF."""
    out = list(digits)
    for k in (10, 11):
        r = sum(x * (k - i) for i, x in enumerate(out)) % 11
        out.append(0 if r < 2 else 11 - r)
    return out[-2:]


def _cn_check(body: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


def _my_number_check(digits: Sequence[int]) -> int:
    total = sum(p * (n + 1 if n <= 6 else n - 5) for n, p in enumerate(reversed(digits), start=1)) % 11
    return 0 if total <= 1 else 11 - total


def _national_id(rng: random.Random, country: str, birth: date, female: bool) -> str:
    """A plausible national identifier for the country, with a valid check digit where there is one."""
    if country == "US":  # SSN
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if country == "DE":  # Steuer-ID: 10 digits, one of them twice, then the check digit
        distinct = rng.sample(range(1, 10), 1) + rng.sample(range(10), 10)
        head = distinct[0]
        rest = [d for d in distinct[1:] if d != head][:8]
        tail = [*rest, rng.choice([head, *rest])]
        rng.shuffle(tail)
        digits = [head, *tail]
        return "".join(map(str, digits)) + str(_steuer_id_check(digits))
    if country == "FR":  # NIR: sex, yy, mm, department, commune, order, key
        dept = rng.choice([d for d in range(1, 96) if d != 20])
        nir = f"{2 if female else 1}{birth.year % 100:02d}{birth.month:02d}{dept:02d}"
        nir += f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
        return f"{nir}{97 - int(nir) % 97:02d}"
    if country == "ES":  # DNI
        n = rng.randint(10_000_000, 99_999_999)
        return f"{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"
    if country == "BR":  # CPF
        nine = _digits(rng, 9)
        cpf = "".join(map(str, nine + _cpf_checks(nine)))
        return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"
    if country == "CN":  # resident identity card: area, birth date, sequence (odd for men), check
        seq = rng.randrange(0, 999, 2) + (0 if female else 1)
        body = f"{rng.choice(_CN_AREAS)}{birth:%Y%m%d}{seq:03d}"
        return body + _cn_check(body)
    # JP: My Number, 11 digits and a check digit
    eleven = _digits(rng, 11)
    return "".join(map(str, eleven)) + str(_my_number_check(eleven))


def _email(rng: random.Random, pool: _Pool, first: str, last: str, birth: date, used: set[str]) -> str:
    provider = rng.choice(pool.spec.mail_providers)
    if pool.spec.locale == "zh_CN":
        if provider == "qq" or not last:
            local = str(rng.randint(10**5, 10**10))
        else:
            local = rng.choice((f"{last}{rng.randint(1, 9999)}", f"{last}_{birth:%y%m%d}", f"{last}{birth.year}"))
    else:
        first = first or "user"
        last = last or "mail"
        p = rng.random()
        if p < 0.35:
            local = f"{first}.{last}"
        elif p < 0.5:
            local = f"{first}{last}"
        elif p < 0.62:
            local = f"{first[0]}.{last}"
        elif p < 0.72:
            local = f"{first}_{last}"
        elif p < 0.84:
            local = f"{first}.{last}{birth.year % 100:02d}"
        else:
            local = f"{first}{rng.randint(1, 999)}"
    email = f"{local}@{provider}.{MAIL_TLD}"
    while email in used:
        local += str(rng.randrange(10))
        email = f"{local}@{provider}.{MAIL_TLD}"
    used.add(email)
    return email


# --------------------------------------------------------------------------- partners, surveys


@dataclass(frozen=True)
class _PartnerSpec:
    name: str
    prefix: str
    share: float
    purchase_channels: tuple[tuple[str, float], ...]
    complaint_channels: tuple[tuple[str, float], ...]


PARTNERS: tuple[_PartnerSpec, ...] = (
    _PartnerSpec("Northwind Shop", "NW", 0.24, (("web", 0.8), ("app", 0.2)), (("web", 0.5), ("email", 0.5))),
    _PartnerSpec("Contoso Call Centre", "CC", 0.10, (("phone", 1.0),), (("phone", 0.85), ("email", 0.15))),
    _PartnerSpec("Fabrikam Surveys", "FB", 0.06, (("web", 0.6), ("in_store", 0.4)), (("web", 0.6), ("email", 0.4))),
)
STAGES = (("prospect", 0.10), ("new", 0.08), ("active", 0.52), ("at_risk", 0.16), ("churned", 0.14))
# Buyer segments: (share, median purchases per year, median basket in EUR). Many small
# buyers, a few whales; the tail makes the upper tiers.
SEGMENTS = ((0.62, 3.0, 35.0), (0.28, 9.5, 60.0), (0.075, 16.0, 130.0), (0.025, 30.0, 210.0))
_OWN_PURCHASE_CHANNELS = (("web", 0.55), ("in_store", 0.30), ("app", 0.15))
_COMPLAINT_CHANNELS = (
    ("email", 0.30),
    ("web", 0.25),
    ("phone", 0.22),
    ("chat", 0.13),
    ("in_store", 0.05),
    ("social", 0.05),
)


@dataclass(frozen=True)
class _QuestionSpec:
    kind: str
    dimension: str
    prompt: str
    options: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class _SurveySpec:
    key: str
    title: str
    description: str
    trigger: str
    channels: tuple[str, ...]
    per_complaint: bool
    questions: tuple[_QuestionSpec, ...]


DELIVERY_OPTIONS = ("Earlier than expected", "On time", "A little late", "Very late", "It did not arrive")
SURVEYS: tuple[_SurveySpec, ...] = (
    _SurveySpec(
        "nps",
        "Relationship NPS",
        "Twice-yearly relationship survey",
        "periodic",
        ("email", "sms", "web"),
        False,
        (
            _QuestionSpec("nps", "loyalty", "How likely are you to recommend us to a friend or colleague?"),
            _QuestionSpec("text", "reason", "What is the main reason for your score?", required=False),
        ),
    ),
    _SurveySpec(
        "csat",
        "Post-resolution CSAT",
        "Sent when a complaint is resolved",
        "complaint_resolved",
        ("email", "sms", "phone"),
        True,
        (
            _QuestionSpec("csat", "resolution", "How satisfied are you with how we handled your complaint?"),
            _QuestionSpec("ces", "effort", "How easy was it to get your issue resolved?"),
        ),
    ),
    _SurveySpec(
        "delivery",
        "Delivery experience",
        "Sent a few days after a purchase",
        "purchase",
        ("email", "in_app", "web"),
        False,
        (
            _QuestionSpec("single_choice", "timeliness", "When did your order arrive?", DELIVERY_OPTIONS),
            _QuestionSpec("csat", "delivery", "How satisfied are you with the delivery?"),
        ),
    ),
)

_NPS_COMMENTS = {
    "promoter": (
        "Fast delivery and friendly staff, as always.",
        "Great prices and the loyalty benefits are worth it.",
        "Customer service solved my problem in one call.",
        "Good quality products, I recommend you to everyone.",
        "The app is easy to use and returns are painless.",
    ),
    "passive": (
        "Mostly fine, but delivery times vary a lot.",
        "Good products, the website could be faster.",
        "Prices went up recently.",
        "OK overall, nothing special.",
        "I had to wait a long time on the phone once.",
    ),
    "detractor": (
        "My complaint took weeks to be resolved.",
        "Too many delays and nobody answers emails.",
        "Quality has gone down in the last year.",
        "I was charged twice and had to chase the refund.",
        "Agents keep transferring me to other departments.",
    ),
}

# --------------------------------------------------------------------------- complaints

_SUBJECTS = {
    "billing": (
        "Charged twice for order {order}",
        "Refund not received",
        "Wrong amount on invoice {invoice}",
        "Unexpected monthly charge",
        "Voucher not applied at checkout",
    ),
    "delivery": (
        "Parcel for order {order} not delivered",
        "Order {order} arrived damaged",
        "Delivery much later than promised",
        "Wrong item delivered",
        "Parcel left outside in the rain",
    ),
    "product_quality": (
        "Product stopped working after two weeks",
        "Item does not match the description",
        "Parts missing from the package",
        "Poor stitching on jacket",
        "Battery drains very fast",
    ),
    "service": (
        "Rude agent on the phone",
        "No answer to my emails",
        "Promised call back never came",
        "Transferred between departments for an hour",
        "Store refused my return",
    ),
    "website": (
        "Cannot log in to my account",
        "Checkout fails with an error",
        "App crashes when opening orders",
        "Password reset e-mail never arrives",
        "Prices differ between app and website",
    ),
    "other": (
        "Unwanted marketing messages",
        "Loyalty points missing",
        "Question about my personal data",
        "Store opening hours changed without notice",
    ),
}
_ISSUES = {
    "billing": (
        "I was charged twice for order {order}.",
        "The refund promised on {date} has still not arrived.",
        "Invoice {invoice} shows {amount} instead of the price on the website.",
        "There is a charge on my card that I never agreed to.",
        "My discount voucher was valid but it was not applied.",
    ),
    "delivery": (
        "My order {order} was marked as delivered on {date}, but I never received it.",
        "The box was crushed and the item inside is broken.",
        "Delivery was promised for {date} and the parcel arrived a week later.",
        "I received a different product from the one I ordered.",
        "The courier left the parcel outside the front door without ringing.",
    ),
    "product_quality": (
        "The product I bought on {date} stopped working after two weeks.",
        "The colour and size are not what the product page described.",
        "Two of the parts listed in the manual are missing.",
        "The seams came apart after the first wash.",
        "The battery lasts less than an hour although four hours were advertised.",
    ),
    "service": (
        "The agent I spoke to on {date} was impatient and hung up on me.",
        "I have sent three e-mails about order {order} and received no answer.",
        "I was promised a call back within 24 hours, but nobody called.",
        "I was transferred four times and had to explain everything again.",
        "The store staff refused my return although I had the receipt.",
    ),
    "website": (
        "Since {date} I cannot log in; the page just reloads.",
        "Payment fails at the last step with an error message.",
        "The app closes every time I open my order history.",
        "I requested a password reset several times but no e-mail arrives.",
        "The app shows a different price than the website for the same item.",
    ),
    "other": (
        "I keep receiving marketing messages although I unsubscribed.",
        "The loyalty points for order {order} were never credited.",
        "I asked what personal data you hold about me and got no reply.",
        "I came to the store on {date} and it was closed during the advertised opening hours.",
    ),
}
_DETAILS = (
    "This is the second time this has happened.",
    "The chat agent said it would be fixed within a few days, but nothing happened.",
    "I have been a loyal customer for years and expected better.",
    "Your help page did not answer my question.",
)
_ASKS = (
    "Please call me back to sort this out.",
    "I expect an answer within the week.",
    "Can you please look into this and let me know?",
    "If this is not resolved I will close my account.",
)
# Sentences that only make sense for one category: (details, asks).
_CATEGORY_SENTENCES = {
    "billing": (("My bank statement clearly shows it.",), ("Please refund the difference as soon as possible.",)),
    "delivery": (
        ("I needed it for a birthday, so the timing was very frustrating.", "I have attached photos."),
        ("Please send a replacement or refund the order.",),
    ),
    "product_quality": (
        ("I used it exactly as the manual says.", "I have attached photos."),
        ("I would like a replacement or a full refund.",),
    ),
    "service": (("I was on hold for forty minutes before that.",), ("I would like an apology.",)),
    "website": (("I tried two browsers and the app.",), ("Please fix this so I can use my account.",)),
}
assert all(len(_SUBJECTS[k]) == len(_ISSUES[k]) for k in _SUBJECTS)
_RESOLUTIONS = {
    "billing": ("refund", "credit_note", "explanation"),
    "delivery": ("reshipped", "refund", "carrier_claim"),
    "product_quality": ("replacement", "refund", "repair"),
    "service": ("apology", "goodwill_voucher", "staff_coaching"),
    "website": ("bug_fixed", "workaround", "explanation"),
    "other": ("explanation", "goodwill_voucher", "no_action"),
}
_ROOT_CAUSE_WEIGHTS = {
    "billing": {"process": 4, "system": 3, "people": 2},
    "delivery": {"partner": 6, "process": 2},
    "product_quality": {"product": 7, "partner": 1},
    "service": {"people": 6, "process": 3},
    "website": {"system": 7, "process": 1},
}
_AGENTS = (
    "lena.hoffmann",
    "marc.dubois",
    "sofia.garcia",
    "tom.becker",
    "yuki.sato",
    "ana.souza",
    "li.wei",
    "james.miller",
    "chloe.martin",
    "jonas.weber",
    "maria.lopez",
    "kenji.ito",
)
# Teams of the seeded staff (the complaint queues "to a team", "my teams"): who is in each and the categories
# whose open complaints are handed to it (a faulty product is a refund or a replacement: Billing's), a share of
# them (the rest wait in no team's queue).
_TEAMS = (
    ("Billing", ("lena.hoffmann", "marc.dubois", "sofia.garcia", "yuki.sato"), ("billing", "product_quality")),
    ("Delivery", ("tom.becker", "ana.souza", "li.wei", "james.miller"), ("delivery",)),
    ("Accounts", ("chloe.martin", "jonas.weber", "maria.lopez", "kenji.ito"), ("website", "service")),
)
_TEAM_SHARE = 0.6
# Mean hours to first response and to resolve after it, by severity (most within the SLA targets).
_RESPONSE_HOURS = {"critical": 0.4, "high": 1.2, "medium": 3.0, "low": 6.0}
_WORK_HOURS = {"critical": 3.0, "high": 8.0, "medium": 20.0, "low": 40.0}

Event = tuple[str | None, str, datetime, str, str | None]  # from, to, at, actor, note


@dataclass
class _Timeline:
    events: list[Event]
    status: str
    first_responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    paused_since: datetime | None
    paused_seconds: int
    reopen_count: int


def _timeline(
    rng: random.Random,
    opened: datetime,
    ref: datetime,
    severity: str,
    opener: str,
    agent: str,
    channel: str,
    resolution: str,
) -> _Timeline:
    """Walk the complaint state machine from ``opened``; keep what happened before ``ref``."""
    ev: list[Event] = [(None, "new", opened, opener, f"Received via {channel}")]
    at = opened + HOUR * rng.expovariate(1 / _RESPONSE_HOURS[severity])
    if rng.random() < 0.05:
        at += HOUR * rng.uniform(0.5, 4)
        ev.append(("new", "resolved", at, agent, f"Resolved on first contact: {resolution}"))
    else:
        ev.append(("new", "open", at, agent, f"Acknowledged and assigned to {agent}"))
        for _ in range(2):
            p = rng.random()
            if p < 0.28:
                at += HOUR * rng.uniform(1, 24)
                ev.append(("open", "pending_customer", at, agent, "Asked the customer for details"))
                at += HOUR * rng.expovariate(1 / 40)
                ev.append(("pending_customer", "open", at, "customer", "Customer replied"))
            elif p < 0.36:
                stuck = rng.random() < 0.12
                at += HOUR * rng.uniform(1, 24)
                ev.append(("open", "on_hold", at, agent, "Waiting for a third party"))
                at += DAY * rng.uniform(30, 120) if stuck else HOUR * rng.expovariate(1 / 30)
                ev.append(("on_hold", "open", at, agent, "Third party answered"))
        at += HOUR * rng.expovariate(1 / _WORK_HOURS[severity])
        ev.append(("open", "resolved", at, agent, f"Resolved: {resolution}"))
        if rng.random() < 0.06:
            at += DAY * rng.uniform(1, 5)
            ev.append(("resolved", "open", at, "customer", "Customer says the issue is not fixed"))
            at += HOUR * rng.expovariate(1 / _WORK_HOURS[severity])
            ev.append(("open", "resolved", at, agent, f"Resolved again: {resolution}"))
    if rng.random() < 0.6:
        at += DAY * rng.uniform(0.5, 6)
        ev.append(("resolved", "closed", at, agent, "Customer confirmed the resolution"))
    else:
        at += DAY * 7
        ev.append(("resolved", "closed", at, "system", "Closed automatically after 7 days"))

    kept = [e for e in ev if e[2] <= ref]
    status = kept[-1][1]
    first_response = next((e[2] for e in kept if e[0] == "new"), None)
    resolved_at = max((e[2] for e in kept if e[1] == "resolved"), default=None)
    paused = 0
    for a, b in itertools.pairwise(kept):
        if a[1] == "pending_customer":
            paused += int((b[2] - a[2]).total_seconds())
    return _Timeline(
        events=kept,
        status=status,
        first_responded_at=first_response,
        resolved_at=resolved_at if status in ("resolved", "closed") else None,
        closed_at=kept[-1][2] if status == "closed" else None,
        paused_since=kept[-1][2] if status == "pending_customer" else None,
        paused_seconds=paused,
        reopen_count=sum(1 for e in kept if e[0] == "resolved" and e[1] == "open"),
    )


@dataclass
class ComplaintDraft:
    """One generated complaint of a customer (``complaint()``), shared by the seed and bench/generate.py."""

    opened: datetime
    category: str
    root_cause: str
    severity: str
    channel: str
    agent: str
    resolution: str
    timeline: _Timeline
    subject: str
    description: str

    def row(
        self, kid: Any, customer_id: Any, partner_id: Any, external_id: str | None, description: Any
    ) -> tuple[Any, ...]:
        """The COPY row (``COMPLAINT_COLUMNS``), with ``description`` as stored (sealed by the caller)."""
        tl = self.timeline
        done = tl.status in ("resolved", "closed")
        return (
            kid,
            customer_id,
            partner_id,
            external_id,
            self.subject,
            description,
            self.category,
            self.root_cause if done else None,
            self.severity,
            self.channel,
            tl.status,
            self.agent if tl.first_responded_at else None,
            self.resolution if done else None,
            tl.first_responded_at,
            tl.resolved_at,
            tl.closed_at,
            tl.paused_since,
            tl.paused_seconds,
            tl.reopen_count,
            len(tl.events),
            self.opened,
            tl.events[-1][2],
        )


def complaint(
    rng: random.Random,
    c: Any,
    ref: datetime,
    category_weights: tuple[tuple[str, float], ...],
    severities: tuple[tuple[str, float], ...],
    cause_weights: Mapping[str, tuple[tuple[str, float], ...]],
    text: Callable[[random.Random, str, datetime, Any], tuple[str, str]],
) -> ComplaintDraft:
    """A complaint of customer ``c`` (a seed or benchmark customer: stage, partner, created_at, first and last
    purchase): when it was opened, what about, how it went (its timeline) and its text."""
    lo = c.first_purchase or c.created_at
    hi = ref - HOUR
    if c.stage in ("at_risk", "churned") and c.last_purchase is not None:
        hi = min(hi, c.last_purchase + DAY * 60)
    elif c.stage in ("active", "new") and rng.random() < 0.3:
        lo = max(lo, ref - DAY * 21)
    if hi <= lo:
        lo = c.created_at
    opened = lo + (hi - lo) * rng.random()
    category = _pick(rng, category_weights)
    severity = _pick(rng, severities)
    channel = _pick(rng, PARTNERS[c.partner].complaint_channels if c.partner is not None else _COMPLAINT_CHANNELS)
    agent = rng.choice(_AGENTS)
    resolution = rng.choice(_RESOLUTIONS.get(category, _RESOLUTIONS["other"]))
    opener = PARTNERS[c.partner].name if c.partner is not None else "customer"
    timeline = _timeline(rng, opened, ref, severity, opener, agent, channel, resolution)
    root_cause = _pick(rng, cause_weights[category])
    subject, description = text(rng, category, opened, c)
    return ComplaintDraft(
        opened, category, root_cause, severity, channel, agent, resolution, timeline, subject, description
    )


# The closed sets used above must stay within the database's CHECK constraints.
assert {c for p in PARTNERS for c, _ in p.complaint_channels} | {c for c, _ in _COMPLAINT_CHANNELS} <= set(
    enums.CHANNELS
)
assert {s for s, _ in STAGES} == set(enums.LIFECYCLE_STAGES)
assert {c for s in SURVEYS for c in s.channels} <= set(enums.SURVEY_CHANNELS)
assert {s.trigger for s in SURVEYS} <= set(enums.SURVEY_TRIGGERS)
assert {q.kind for s in SURVEYS for q in s.questions} <= set(enums.QUESTION_KINDS)

# --------------------------------------------------------------------------- generation state


@dataclass(slots=True)
class _Customer:
    id: uuid.UUID
    created_at: datetime
    stage: str
    partner: int | None  # index into PARTNERS
    reach: tuple[str, ...]  # survey channels the customer may be contacted on
    mood: float
    segment: int  # index into SEGMENTS
    first_purchase: datetime | None = None
    last_purchase: datetime | None = None
    sample_purchase: datetime | None = None
    resolved: list[tuple[uuid.UUID, datetime, float, int]] = field(default_factory=list)


class _Copier:
    """Buffers records for one table and COPYs them in chunks."""

    def __init__(self, raw: Any, table: str, columns: Sequence[str]) -> None:
        self.raw, self.table, self.columns = raw, table, tuple(columns)
        self.rows: list[tuple[Any, ...]] = []
        self.count = 0

    async def flush(self) -> None:
        if self.rows:
            await self.raw.copy_records_to_table(self.table, records=self.rows, columns=self.columns)
            self.count += len(self.rows)
            self.rows = []


Weighted = tuple[tuple[str, float], ...]


@functools.cache
def _cumulative(weighted: Weighted) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(v for v, _ in weighted), tuple(itertools.accumulate(w for _, w in weighted))


def _pick(rng: random.Random, weighted: Weighted) -> str:
    """One value, drawn with the given weights."""
    values, cumulative = _cumulative(weighted)
    return values[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def _clamp(value: float, kind: str) -> int:
    low, high = SCORE_RANGES[kind]
    return max(low, min(high, round(value)))


class _Seeder:
    def __init__(self, n: int, seed: int, ref: datetime, raw: Any, progress: Progress | LineProgress) -> None:
        self.n = n
        self.ref = ref
        self.raw = raw
        self.progress = progress
        master = random.Random(seed)
        # One stream per phase (and one for ids), so tuning one phase reshuffles less of the others.
        self.rng = {
            name: random.Random(master.getrandbits(64))
            for name in ("customers", "purchases", "complaints", "surveys", "ids")
        }
        self.faker_seed = master.getrandbits(32)
        # drawn after the others, so the teams change none of the data generated before them
        self.rng["teams"] = random.Random(master.getrandbits(64))
        self.open_complaints: list[tuple[uuid.UUID, str, str, datetime, str | None]] = []
        self.customers: list[_Customer] = []
        self.partner_ids: list[uuid.UUID] = []
        self.surveys: dict[str, tuple[uuid.UUID, list[uuid.UUID]]] = {}
        self.counts: dict[str, int] = {}

    def uid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng["ids"].getrandbits(128), version=4)

    async def _ids(self, table: str) -> Iterator[int]:
        """Ids for new rows of ``table`` (complaint events, survey answers), counting up from its identity
        sequence; the sequence is moved past them after the COPY (``SYNC_SEQUENCE_SQL``)."""
        return itertools.count(int(await self.raw.fetchval(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")))

    def _task(self, name: str, total: int) -> Any:
        return self.progress.add_task(name, total=total)

    # ---- reference rows (few; plain inserts)

    async def reference(self, conn: AsyncConnection) -> tuple[list[str], list[str]]:
        categories = list(
            (await conn.execute(text("SELECT code FROM complaint_categories WHERE active ORDER BY code"))).scalars()
        )
        causes = list((await conn.execute(text("SELECT code FROM root_causes WHERE active ORDER BY code"))).scalars())
        if not categories or not causes:
            raise RuntimeError("complaint categories and root causes are missing: run the migrations first")
        since = self.ref - DAY * 5 * 365
        self.partner_ids = [self.uid() for _ in PARTNERS]
        await conn.execute(
            insert(t.partners),
            [
                {"id": pid, "name": p.name, "created_at": since}
                for pid, p in zip(self.partner_ids, PARTNERS, strict=True)
            ],
        )
        survey_rows, question_rows = [], []
        for spec in SURVEYS:
            sid = self.uid()
            qids = [self.uid() for _ in spec.questions]
            self.surveys[spec.key] = (sid, qids)
            survey_rows.append(
                {
                    "id": sid,
                    "title": spec.title,
                    "description": spec.description,
                    "status": "active",
                    "trigger": spec.trigger,
                    "channels": list(spec.channels),
                    "per_complaint": spec.per_complaint,
                    "created_at": since + DAY * 365,
                }
            )
            for pos, (qid, q) in enumerate(zip(qids, spec.questions, strict=True), start=1):
                question_rows.append(
                    {
                        "id": qid,
                        "survey_id": sid,
                        "position": pos,
                        "kind": q.kind,
                        "dimension": q.dimension,
                        "prompt": q.prompt,
                        "options": list(q.options),
                        "required": q.required,
                    }
                )
        await conn.execute(insert(t.surveys), survey_rows)
        await conn.execute(insert(t.survey_questions), question_rows)
        self.counts.update(partners=len(PARTNERS), surveys=len(survey_rows), survey_questions=len(question_rows))
        return categories, causes

    # ---- customers

    async def make_customers(self) -> None:
        rng = self.rng["customers"]
        pool_size = max(60, min(400, self.n // 4))
        pools = []
        for i, spec in enumerate(LOCALES):
            fake = Faker(spec.locale)
            fake.seed_instance(self.faker_seed + i)
            pools.append(_build_pool(spec, fake, pool_size))
        locale_weights = [s.weight for s in LOCALES]
        copier = _Copier(
            self.raw,
            "customers",
            (*CUSTOMER_COLUMNS, *BLIND_INDEX_COLUMNS),
        )
        # Encrypted at rest (infra/crypto.py): tokens and blind indexes are made here, COPY takes them as text.
        keyring = crypto.current()
        enc, index = keyring.encrypt, keyring.customer_indexes
        ref_date = self.ref.date()
        used_emails: set[str] = set()
        partner_seq = [0] * len(PARTNERS)
        task = self._task("customers", self.n)
        for i in range(self.n):
            pool = rng.choices(pools, weights=locale_weights)[0]
            loc, country = pool.spec.locale, pool.spec.country
            female = rng.random() < 0.5
            first, first_ascii = rng.choice(pool.female if female else pool.male)
            last, last_ascii = rng.choice(pool.last)
            if loc == "zh_CN":
                name = f"{last}{first}"
            elif loc == "ja_JP":
                name = f"{last} {first}"
            elif loc == "es_ES" and rng.random() < 0.8:
                name = f"{first} {last} {rng.choice(pool.last)[0]}"
            else:
                name = f"{first} {last}"
            age_days = int(rng.triangular(18.01, 85.99, 38) * 365.2425)
            birth = ref_date - timedelta(days=age_days)

            stage = _pick(rng, STAGES)
            days_ago = {
                "new": rng.uniform(0.5, 90),
                "prospect": rng.triangular(1, 1460, 1),
                "active": rng.triangular(100, 1460, 400),
                "at_risk": rng.uniform(300, 1460),
                "churned": rng.uniform(540, 1460),
            }[stage]
            created = self.ref - DAY * days_ago
            p = rng.random()
            partner: int | None = None
            acc = 0.0
            for k, partner_spec in enumerate(PARTNERS):
                acc += partner_spec.share
                if p < acc:
                    partner = k
                    break
            external_ref = None
            if partner is not None:
                partner_seq[partner] += 1
                external_ref = f"{PARTNERS[partner].prefix}-C{100000 + partner_seq[partner] * 7:08d}"

            email = _email(rng, pool, first_ascii, last_ascii, birth, used_emails) if rng.random() > 0.02 else None
            phone = _phone(rng, pool) if rng.random() > 0.08 else None
            national_id = _national_id(rng, country, birth, female) if rng.random() < 0.7 else None
            address = {
                "line1": rng.choice(pool.line1),
                "line2": rng.choice(pool.line2) if pool.line2[0] and rng.random() < 0.3 else None,
                "postalCode": (place := rng.choice(pool.places))[0],
                "city": place[1],
                "country": country,
            }

            consent_email = self._consent(rng, 0.62, email, created)
            consent_sms = self._consent(rng, 0.33, phone, created)
            consent_phone = self._consent(rng, 0.18, phone, created)
            reach = tuple(
                c
                for c, ok in (
                    ("email", consent_email),
                    ("sms", consent_sms),
                    ("phone", consent_phone),
                    ("web", True),
                    ("in_app", rng.random() < 0.4),
                )
                if ok
            )
            segment = rng.choices(range(len(SEGMENTS)), weights=[sg[0] for sg in SEGMENTS])[0]
            mood = rng.gauss(0, 1) + {"active": 0.3, "new": 0.2, "at_risk": -0.4, "churned": -0.8}.get(stage, 0.0)
            mood += 0.15 * segment
            cid = self.uid()
            self.customers.append(_Customer(cid, created, stage, partner, reach, mood, segment))
            birth_date = birth if rng.random() > 0.05 else None
            # Through the write path's own normalisation (domain/customers.py), so the stored values and their
            # blind indexes are exactly what createCustomer would have stored.
            given = {
                "name": name,
                "email": email,
                "phone": phone,
                "national_id": national_id,
                "birth_date": birth_date,
                "address": address,
                "locale": loc,
                "lifecycle_stage": stage,
                "external_ref": external_ref,
            }
            v = normalize_customer(given, default_region=country, today=ref_date, creating=True)
            name, email, phone, national_id, birth_date = (
                v["name"],
                v["email"],
                v["phone"],
                v["national_id"],
                v["birth_date"],
            )
            indexes = index(
                {"email": email, "phone": phone, "national_id": national_id, "name": name, "birth_date": birth_date}
            )
            copier.rows.append(
                (
                    cid,
                    self.partner_ids[partner] if partner is not None else None,
                    v["external_ref"],
                    name,
                    email and enc(email, "customers.email", cid),
                    phone and enc(phone, "customers.phone", cid),
                    national_id and enc(national_id, "customers.national_id", cid),
                    birth_date and enc(birth_date.isoformat(), "customers.birth_date", cid),
                    enc(orjson.dumps(v["address"], option=orjson.OPT_SORT_KEYS).decode(), "customers.address", cid),
                    v["locale"],
                    v["lifecycle_stage"],
                    consent_email,
                    consent_sms,
                    consent_phone,
                    created,
                    created + (self.ref - created) * rng.random(),
                    *(indexes[column] for column in BLIND_INDEX_COLUMNS),
                )
            )
            if len(copier.rows) >= COPY_CHUNK:
                await copier.flush()
                self.progress.update(task, completed=i + 1)
        await copier.flush()
        self.progress.update(task, completed=self.n)
        self.counts["customers"] = copier.count

    def _consent(
        self, rng: random.Random, probability: float, contact: str | None, created: datetime
    ) -> datetime | None:
        """When the customer consented to be contacted this way (``None``: no consent, or no contact data)."""
        if contact is None or rng.random() >= probability:
            return None
        return min(self.ref, created + DAY * rng.uniform(0, 30))

    # ---- purchases

    async def make_purchases(self) -> None:
        rng = self.rng["purchases"]
        copier = _Copier(
            self.raw,
            "purchases",
            PURCHASE_COLUMNS,
        )
        order_seq = [0] * len(PARTNERS)
        task = self._task("purchases", self.n)
        for i, c in enumerate(self.customers):
            if c.stage == "prospect":
                continue
            start = c.created_at + HOUR
            if c.stage == "at_risk":
                end = self.ref - DAY * rng.uniform(100, 240)
            elif c.stage == "churned":
                end = self.ref - DAY * rng.uniform(380, 520)
            else:
                end = self.ref - HOUR
            span = max((end - start).total_seconds(), 3600.0)
            years = max(span / 86400 / 365, 30 / 365)
            _, rate_median, basket_median = SEGMENTS[c.segment]
            rate = rate_median * rng.lognormvariate(0, 0.45)
            count = max(1, int(rate * years * rng.lognormvariate(0, 0.25) + 0.5))
            basket = basket_median * rng.lognormvariate(0, 0.45)
            times = sorted(start + timedelta(seconds=span * rng.random()) for _ in range(count))
            if c.stage == "active" and times[-1] < self.ref - DAY * 60:
                times[-1] = max(start, self.ref - DAY * rng.uniform(0.2, 60))
            partner = c.partner
            partner_id = self.partner_ids[partner] if partner is not None else None
            channels = PARTNERS[partner].purchase_channels if partner is not None else _OWN_PURCHASE_CHANNELS
            for at in times:
                cents = max(100, round(basket * rng.lognormvariate(0, 0.55) * 100))
                if rng.random() < 0.35:
                    cents = cents // 100 * 100 + 99
                external_id = None
                if partner is not None:
                    order_seq[partner] += 1
                    external_id = f"{PARTNERS[partner].prefix}-O{order_seq[partner]:09d}"
                copier.rows.append(
                    (
                        self.uid(),
                        c.id,
                        partner_id,
                        external_id,
                        Decimal(cents).scaleb(-2),
                        "EUR",
                        _pick(rng, channels),
                        at,
                        min(self.ref, at + timedelta(seconds=rng.uniform(1, 7200))),
                    )
                )
            c.first_purchase, c.last_purchase = times[0], times[-1]
            c.sample_purchase = rng.choice(times)
            if len(copier.rows) >= COPY_CHUNK:
                await copier.flush()
                self.progress.update(task, completed=i + 1)
        await copier.flush()
        self.progress.update(task, completed=self.n)
        self.counts["purchases"] = copier.count

    # ---- complaints

    async def make_complaints(self, categories: list[str], causes: list[str]) -> None:
        rng = self.rng["complaints"]
        complaints = _Copier(
            self.raw,
            "complaints",
            COMPLAINT_COLUMNS,
        )
        events = _Copier(self.raw, "complaint_events", EVENT_COLUMNS)
        base_weights = {
            "delivery": 28,
            "product_quality": 22,
            "billing": 17,
            "service": 15,
            "website": 12,
            "other": 6,
        }
        category_weights = tuple((code, float(base_weights.get(code, 5))) for code in categories)
        severities = (("low", 0.30), ("medium", 0.45), ("high", 0.20), ("critical", 0.05))
        rate = {"prospect": 0.03, "new": 0.10, "active": 0.15, "at_risk": 0.22, "churned": 0.22}
        cause_weights = {
            category: tuple((code, float(_ROOT_CAUSE_WEIGHTS.get(category, {}).get(code, 1))) for code in causes)
            for category in categories
        }
        ticket_seq = [0] * len(PARTNERS)
        enc = crypto.current().encrypt
        event_ids = await self._ids("complaint_events")
        task = self._task("complaints", self.n)
        for i, c in enumerate(self.customers):
            if rng.random() >= rate[c.stage]:
                continue
            how_many = 1 if (p := rng.random()) < 0.76 else (2 if p < 0.93 else (3 if p < 0.98 else 4))
            for _ in range(how_many):
                draft = complaint(rng, c, self.ref, category_weights, severities, cause_weights, self._complaint_text)
                tl = draft.timeline
                opened = draft.opened
                kid = self.uid()
                partner_id = external_id = None
                if c.partner is not None:
                    ticket_seq[c.partner] += 1
                    partner_id = self.partner_ids[c.partner]
                    external_id = f"{PARTNERS[c.partner].prefix}-T{ticket_seq[c.partner]:08d}"
                complaints.rows.append(
                    draft.row(kid, c.id, partner_id, external_id, enc(draft.description, "complaints.description", kid))
                )
                if tl.status in ACTIVE_STATUSES:  # in a queue: what make_teams may hand to a team
                    assignee = draft.agent if tl.first_responded_at else None
                    self.open_complaints.append((kid, draft.category, tl.status, tl.events[-1][2], assignee))
                for e in tl.events:
                    eid = next(event_ids)
                    events.rows.append(
                        (eid, kid, *e[:4], None if e[4] is None else enc(e[4], "complaint_events.note", eid))
                    )
                c.mood -= 0.3
                if tl.resolved_at is not None:
                    days = (tl.resolved_at - opened).total_seconds() / 86400
                    c.resolved.append((kid, tl.resolved_at, days, tl.reopen_count))
            if len(complaints.rows) >= COPY_CHUNK or len(events.rows) >= COPY_CHUNK:
                await complaints.flush()
                await events.flush()
                self.progress.update(task, completed=i + 1)
        await complaints.flush()
        await events.flush()
        await self.raw.execute(SYNC_SEQUENCE_SQL.format(table="complaint_events"))
        self.progress.update(task, completed=self.n)
        self.counts["complaints"] = complaints.count
        self.counts["complaint_events"] = events.count

    async def make_teams(self) -> None:
        """The teams (``_TEAMS``) and a share of the open complaints of their categories handed to them, as
        assignComplaint hands one over: the complaint's team and version move, and an assignment event says
        so (infra/repos/complaint_work.py ``team_move``), by its assignee or, if none, the team's first member."""
        rng = self.rng["teams"]
        created = self.ref - DAY * 120
        team_of: dict[str, tuple[uuid.UUID, str, str]] = {}
        members = 0
        for name, staff, categories in _TEAMS:
            team_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            await self.raw.execute(
                "INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)", team_id, name, created
            )
            await self.raw.executemany(
                "INSERT INTO team_members (team_id, user_id, added_by, created_at) VALUES ($1, $2, 'seed', $3)",
                [(team_id, user, created) for user in staff],
            )
            members += len(staff)
            team_of.update(dict.fromkeys(categories, (team_id, name, staff[0])))
        enc = crypto.current().encrypt
        event_ids = await self._ids("complaint_events")
        events = _Copier(self.raw, "complaint_events", HANDOVER_COLUMNS)
        moved: list[tuple[uuid.UUID, datetime, uuid.UUID]] = []
        for kid, category, status, last_at, assignee in self.open_complaints:
            team = team_of.get(category)
            if team is None or rng.random() >= _TEAM_SHARE:
                continue
            team_id, name, lead = team
            at = min(self.ref, last_at + HOUR * rng.uniform(0.1, 2))
            eid = next(event_ids)
            note = complaint_work.team_move(None, name)
            events.rows.append(
                (eid, kid, status, status, at, assignee or lead, enc(note, "complaint_events.note", eid), "assignment")
            )
            moved.append((team_id, at, kid))
        await events.flush()
        await self.raw.execute(SYNC_SEQUENCE_SQL.format(table="complaint_events"))
        await self.raw.executemany(
            "UPDATE complaints SET team_id = $1, version = version + 1, updated_at = greatest(updated_at, $2) "
            "WHERE id = $3",
            moved,
        )
        self.counts["complaint_events"] += events.count
        self.counts["teams"] = len(_TEAMS)
        self.counts["team_members"] = members

    def _complaint_text(self, rng: random.Random, category: str, opened: datetime, c: _Customer) -> tuple[str, str]:
        key = category if category in _SUBJECTS else "other"
        when = opened - DAY * rng.uniform(1, 20)
        values = {
            "order": f"#{rng.randint(1_000_000, 9_999_999)}",
            "invoice": f"INV-{opened:%Y}-{rng.randint(10000, 99999)}",
            "date": f"{max(when, c.created_at):%d %B %Y}",
            "amount": f"€{rng.randint(15, 400)}.{rng.choice(('00', '49', '90', '99'))}",
        }
        details, asks = _CATEGORY_SENTENCES.get(key, ((), ()))
        which = rng.randrange(len(_SUBJECTS[key]))  # subjects and issues are paired by position
        subject = _SUBJECTS[key][which].format(**values)
        sentences = [
            _ISSUES[key][which].format(**values),
            *rng.sample(_DETAILS + details, rng.randint(1, 2)),
            rng.choice(_ASKS + asks),
        ]
        return subject, " ".join(sentences)

    # ---- surveys

    async def make_surveys(self) -> None:
        rng = self.rng["surveys"]
        invitations = _Copier(self.raw, "survey_invitations", INVITATION_COLUMNS)
        responses = _Copier(
            self.raw,
            "survey_responses",
            RESPONSE_COLUMNS,
        )
        answers = _Copier(self.raw, "survey_answers", ANSWER_COLUMNS)
        specs = {s.key: s for s in SURVEYS}
        enc = crypto.current().encrypt  # free-text answers are encrypted at rest
        answer_ids = await self._ids("survey_answers")
        response_seq = [0] * len(PARTNERS)
        task = self._task("surveys", self.n)

        def invite(
            c: _Customer, key: str, sent: datetime, complaint: uuid.UUID | None, respond: float
        ) -> tuple[uuid.UUID, str, datetime] | None:
            """Invite (maybe with a reminder); return (response id, channel, at) if answered."""
            spec = specs[key]
            channels = [ch for ch in spec.channels if ch in c.reach]
            if not channels or sent > self.ref:
                return None
            channel = rng.choice(channels)
            survey_id = self.surveys[key][0]
            invitations.rows.append((survey_id, c.id, complaint, channel, sent))
            submitted = sent + HOUR * rng.expovariate(1 / 20)
            if rng.random() >= respond:
                reminder = sent + DAY * 5  # no answer: a reminder, which some answer
                if rng.random() >= 0.6 or reminder > self.ref:
                    return None
                invitations.rows.append((survey_id, c.id, complaint, channel, reminder))
                if rng.random() >= 0.25:
                    return None
                submitted = reminder + HOUR * rng.expovariate(1 / 20)
            if submitted > self.ref:
                return None
            rid = self.uid()
            partner_id = external_id = None
            if c.partner is not None:
                response_seq[c.partner] += 1
                partner_id = self.partner_ids[c.partner]
                external_id = f"{PARTNERS[c.partner].prefix}-R{response_seq[c.partner]:08d}"
            responses.rows.append((rid, survey_id, c.id, complaint, partner_id, external_id, channel, submitted))
            return rid, channel, submitted

        for i, c in enumerate(self.customers):
            nps_q, reason_q = self.surveys["nps"][1]
            if c.first_purchase is not None and rng.random() < 0.24:
                lo = c.first_purchase + DAY * 7
                hi = min(self.ref, (c.last_purchase or self.ref) + DAY * 120)
                if lo < hi and (got := invite(c, "nps", lo + (hi - lo) * rng.random(), None, 0.5)):
                    nps = _clamp(7.9 + 1.9 * c.mood + rng.gauss(0, 1.1), "nps")
                    answers.rows.append((next(answer_ids), got[0], nps_q, nps, None, None))
                    if rng.random() < 0.4:
                        band = "promoter" if nps >= 9 else ("passive" if nps >= 7 else "detractor")
                        comment = rng.choice(_NPS_COMMENTS[band])
                        aid = next(answer_ids)
                        sealed = enc(comment, "survey_answers.text", aid)
                        answers.rows.append((aid, got[0], reason_q, None, None, sealed))
            if c.sample_purchase is not None and rng.random() < 0.10:
                sent = c.sample_purchase + DAY * rng.uniform(2, 6)
                if got := invite(c, "delivery", sent, None, 0.4):
                    choice_q, csat_q = self.surveys["delivery"][1]
                    option = rng.choices(DELIVERY_OPTIONS, weights=(15, 55, 20, 7, 3))[0]
                    base = {0: 4.6, 1: 4.2, 2: 3.1, 3: 2.0, 4: 1.3}[DELIVERY_OPTIONS.index(option)]
                    answers.rows.append((next(answer_ids), got[0], choice_q, None, [option], None))
                    score = _clamp(base + 0.3 * c.mood + rng.gauss(0, 0.6), "csat")
                    answers.rows.append((next(answer_ids), got[0], csat_q, score, None, None))
            for complaint_id, resolved_at, days, reopens in c.resolved:
                if rng.random() >= 0.85:
                    continue
                if got := invite(c, "csat", resolved_at + HOUR * rng.uniform(1, 6), complaint_id, 0.45):
                    csat_q, ces_q = self.surveys["csat"][1]
                    csat = _clamp(4.0 + 0.6 * c.mood - 0.2 * min(days, 8) - 0.8 * reopens + rng.gauss(0, 0.7), "csat")
                    ces = _clamp(1 + (csat - 1) * 1.5 + rng.gauss(0, 0.7), "ces")
                    answers.rows.append((next(answer_ids), got[0], csat_q, csat, None, None))
                    answers.rows.append((next(answer_ids), got[0], ces_q, ces, None, None))
            if max(len(invitations.rows), len(responses.rows), len(answers.rows)) >= COPY_CHUNK:
                await invitations.flush()
                await responses.flush()
                await answers.flush()
                self.progress.update(task, completed=i + 1)
        await invitations.flush()
        await responses.flush()
        await answers.flush()
        await self.raw.execute(SYNC_SEQUENCE_SQL.format(table="survey_answers"))
        self.progress.update(task, completed=self.n)
        self.counts.update(
            survey_invitations=invitations.count,
            survey_responses=responses.count,
            survey_answers=answers.count,
        )


# One UPDATE: the tier a complaint was opened under (the customer's tier now) and the
# SLA clock of the active SLA policy for that tier and severity (a tier-specific target
# wins over '*'). Time spent pending on the customer extends the resolution deadline.
_COMPLAINT_TIERS_SQL = text("""
WITH sla AS (
    SELECT p.version, s.tier_code, s.severity, s.first_response_minutes, s.resolution_minutes
    FROM sla_policies p JOIN sla_targets s ON s.policy_id = p.id
    WHERE p.status = 'active'
),
target AS (
    SELECT k.id, c.tier_code, s.version, s.first_response_minutes, s.resolution_minutes
    FROM complaints k
    JOIN customers c ON c.id = k.customer_id
    LEFT JOIN LATERAL (
        SELECT * FROM sla
        WHERE sla.severity = k.severity AND sla.tier_code IN (c.tier_code, '*')
        ORDER BY sla.tier_code = '*'
        LIMIT 1
    ) s ON true
),
due AS (
    SELECT k.id, x.tier_code, x.version,
           k.opened_at + make_interval(mins => x.first_response_minutes) AS first_response_due_at,
           k.opened_at + make_interval(mins => x.resolution_minutes) + make_interval(secs => k.paused_seconds)
               AS resolution_due_at
    FROM complaints k JOIN target x ON x.id = k.id
)
UPDATE complaints k
SET tier_at_open = d.tier_code,
    sla_policy_version = d.version,
    first_response_due_at = d.first_response_due_at,
    resolution_due_at = d.resolution_due_at,
    first_response_breached =
        coalesce(coalesce(k.first_responded_at, now()) > d.first_response_due_at, false),
    resolution_breached =
        coalesce(coalesce(k.resolved_at, k.paused_since, now()) > d.resolution_due_at, false)
FROM due d
WHERE d.id = k.id
""")
_ANALYZED = ("customers", "purchases", "complaints", "survey_responses", "survey_answers", "survey_questions")
_RESPONSE_TIERS_SQL = text("""
UPDATE survey_responses r SET tier_at_response = c.tier_code
FROM customers c WHERE c.id = r.customer_id
""")
# Invitations carry their trigger and the tier of the customer when invited (the tier now, as above).
# Benefits with costs, refunds and uses (issue 15), so that the economics report has something to show:
# benefits of the active policy; one purchase in 40 returned (every other one in full, else 30 %) nine days
# after it; and, once tiers are placed, uses of the benefits on purchases of the last 90 days.
_BENEFITS_SQL = text("""
INSERT INTO benefits (policy_id, code, name, kind, cost_model, cost_value, tiers, budget, budget_period)
SELECT p.id, v.code, v.name, v.kind, v.model, v.value, v.tiers, v.budget, v.period
FROM tier_policies p, (VALUES
    ('free_shipping', 'Free shipping', 'free_shipping', 'fixed_per_use', 4.90,
     ARRAY['silver', 'gold', 'platinum'], 20000.00, 'month'),
    ('discount5', '5 % off', 'discount', 'percent_of_order', 5, ARRAY['gold', 'platinum'], NULL, NULL),
    ('priority_support', 'Priority support', 'priority_support', 'per_customer_month', 3.00,
     ARRAY['gold', 'platinum'], NULL, NULL),
    ('dedicated_manager', 'Dedicated manager', 'dedicated_manager', 'per_customer_month', 25.00,
     ARRAY['platinum'], NULL, NULL)
) AS v(code, name, kind, model, value, tiers, budget, period)
WHERE p.status = 'active'
""")
_REFUNDS_SQL = text("""
INSERT INTO refunds (purchase_id, customer_id, partner_id, external_id, amount, reason, refunded_at, purchased_at,
                     closes_purchase, actor)
SELECT p.id, p.customer_id, p.partner_id, p.external_id || '-R',
       CASE WHEN abs(hashtext(p.id::text)) % 2 = 0 THEN p.amount ELSE round(p.amount * 0.3, 2) END,
       'returned', least(CAST(:ref AS timestamptz), p.purchased_at + interval '9 days'), p.purchased_at,
       abs(hashtext(p.id::text)) % 2 = 0, 'seed'
FROM purchases p WHERE abs(hashtext(p.id::text)) % 40 = 0
""")
_REDEMPTIONS_SQL = text("""
INSERT INTO benefit_redemptions (benefit_id, benefit_code, policy_version, customer_id, partner_id, tier_code,
                                 order_amount, cost, redeemed_at, actor)
SELECT DISTINCT ON (c.id, b.code, CASE WHEN b.cost_model = 'per_customer_month'
                                       THEN date_trunc('month', p.purchased_at) END,
                    CASE WHEN b.cost_model <> 'per_customer_month' THEN p.id END)
       b.id, b.code, pol.version, c.id, p.partner_id, c.tier_code,
       CASE WHEN b.cost_model = 'percent_of_order' THEN p.amount END,
       CASE b.cost_model WHEN 'percent_of_order' THEN round(p.amount * b.cost_value / 100, 2)
                         ELSE round(b.cost_value, 2) END,
       p.purchased_at, 'seed'
FROM purchases p
JOIN customers c ON c.id = p.customer_id
JOIN tier_policies pol ON pol.status = 'active'
JOIN benefits b ON b.policy_id = pol.id AND c.tier_code = ANY(b.tiers)
WHERE p.purchased_at > CAST(:ref AS timestamptz) - interval '90 days' AND abs(hashtext(p.id::text || b.code)) % 3 = 0
ORDER BY c.id, b.code, CASE WHEN b.cost_model = 'per_customer_month' THEN date_trunc('month', p.purchased_at) END,
         CASE WHEN b.cost_model <> 'per_customer_month' THEN p.id END, p.purchased_at
""")

_INVITATION_TIERS_SQL = text("""
UPDATE survey_invitations i SET trigger = s.trigger, tier_at_invitation = c.tier_code
FROM surveys s, customers c WHERE s.id = i.survey_id AND c.id = i.customer_id
""")


async def seed(
    engine: AsyncEngine,
    customers: int,
    *,
    seed: int = 42,
    progress: bool = True,
    lines: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> SeedReport:
    """Load ``customers`` demo customers and everything around them into an empty database.

    Same ``seed`` (and reference time ``now``, default: today 00:00 UTC) → same data.
    Needs the reference data of the migrations (complaint categories, root causes, an
    active tier policy). Runs in one transaction; metrics and tiers are computed by
    ``recompute_all`` and ``retier_all`` before it commits.

    ``progress``: rich's bar (on a terminal); ``lines``: progress as plain lines instead, written there
    (for a log or a pipe).
    """
    started = time.perf_counter()
    ref = (now or datetime.now(UTC)).astimezone(UTC)
    if now is None:
        ref = ref.replace(hour=0, minute=0, second=0, microsecond=0)
    columns = (TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar: Progress | LineProgress = LineProgress(lines) if lines else Progress(*columns, disable=not progress)
    with bar:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 0"))  # also opens the transaction COPY joins
            if (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM customers)"))).scalar_one():
                raise RuntimeError("the database already holds customers; seed an empty database")
            if await active_policy(conn) is None:
                raise RuntimeError("there is no active tier policy: run the migrations first")
            raw = (await conn.get_raw_connection()).driver_connection
            seeder = _Seeder(customers, seed, ref, raw, bar)
            categories, causes = await seeder.reference(conn)
            await seeder.make_customers()
            await seeder.make_purchases()
            await conn.execute(_BENEFITS_SQL)
            await conn.execute(_REFUNDS_SQL, {"ref": ref})
            await seeder.make_complaints(categories, causes)
            await seeder.make_teams()
            await seeder.make_surveys()

            task = bar.add_task("metrics & tiers", total=4)
            await conn.execute(text(f"ANALYZE {', '.join(_ANALYZED)}"))
            bar.advance(task)
            metrics = await recompute_all(conn)
            bar.advance(task)
            changes = await retier_all(conn, actor="seed")
            await conn.execute(_REDEMPTIONS_SQL, {"ref": ref})
            bar.advance(task)
            await conn.execute(_COMPLAINT_TIERS_SQL)
            await conn.execute(_RESPONSE_TIERS_SQL)
            await conn.execute(_INVITATION_TIERS_SQL)
            await churn.recompute_all(conn)  # every customer's churn warning, as the nightly job would
            bar.advance(task)
    c = seeder.counts
    return SeedReport(
        partners=c["partners"],
        customers=c["customers"],
        purchases=c["purchases"],
        complaints=c["complaints"],
        complaint_events=c["complaint_events"],
        teams=c["teams"],
        team_members=c["team_members"],
        surveys=c["surveys"],
        survey_questions=c["survey_questions"],
        survey_invitations=c["survey_invitations"],
        survey_responses=c["survey_responses"],
        survey_answers=c["survey_answers"],
        customer_metrics=metrics,
        tier_changes=changes,
        seconds=round(time.perf_counter() - started, 2),
    )


__all__ = ["LineProgress", "SeedReport", "is_empty", "seed"]
