"""The benchmark data set: N customers, 10 N purchases, N/2 complaints (with their events) and about N survey
answers (NPS, CSAT and CES on every survey channel, with their invitations and responses), bulk-loaded with
COPY into a migrated database, then metrics, tiers and SLA clocks computed by the service's own code. Then,
for the economics report (issue 15), as demo/seed.py makes them: the active policy's benefit catalogue, one
purchase in 40 refunded (N/4 refunds, before the metrics: they are net of refunds) and, once tiers are
placed, uses of the benefits on the purchases of the last 90 days by eligible customers.

    python -m bench.generate [--customers 1000000] [--database tierwise_bench_1000000] [--churn]

Customers are generated a chunk at a time (``CHUNK`` customers and everything around them), each chunk
one transaction: an interrupted run resumes after the last committed chunk, and a complete database is
reused as it is. Customer ids are ordered (chunk and position in their high bits), so the id indexes and
``ix_purchases_customer_at`` grow at their right edge instead of splitting pages all over.

Secondary indexes are deferred during the bulk phase (COPY, metrics & tiers, SLA clocks): recorded in
``bench_deferred_indexes`` and dropped before the first chunk, built again from the recorded definitions
once the bulk writes are over (those the metrics & tiers step reads, before it), then the table is dropped.
A run killed anywhere in between is finished by a re-run: every recorded index missing is built, so the
schema ends as the migrations made it.

Names, addresses, phones, national ids and complaint texts come from demo/seed.py's pools and
helpers; sensitive values are stored as the service stores them (``infra.crypto`` when present).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import multiprocessing
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from faker import Faker
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy import event, text

from bench.common import migrated_database
from demo import seed as S
from demo.seed import (
    ANSWER_COLUMNS,
    COMPLAINT_COLUMNS,
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    INVITATION_COLUMNS,
    PURCHASE_COLUMNS,
    RESPONSE_COLUMNS,
)
from infra import tables as t
from infra.db import create_engine
from infra.settings import Settings

CHUNK = 20_000
PURCHASES_PER_CUSTOMER = 10
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TWO_HOURS = timedelta(hours=2)
_ID_PREFIX = 0x7B3E  # top 16 bits of every generated id: chunk and position follow

TABLES = (
    "customers",
    "purchases",
    "complaints",
    "complaint_events",
    "survey_invitations",
    "survey_responses",
    "survey_answers",
)

# Secondary indexes are deferred during the bulk phase: their definitions are recorded in DEFER_TABLE and they
# are dropped before the first chunk is loaded, then built once from the stored definitions (a sort each,
# instead of a random insertion per row: the blind-index columns are random hex, and every UPDATE of the bulk
# phase adds an entry to every index). Primary keys and the indexes of constraints stay; the indexes the
# metrics & tiers step reads (a range of customers' purchases, complaints and responses) are built before it.
DEFER_TABLE = "bench_deferred_indexes"
DEFERRED_TABLES = (*TABLES, "customer_metrics", "tier_changes")
RETIER_INDEXES = (
    "ix_purchases_customer_at",
    "ix_complaints_customer_opened",
    "ix_survey_responses_customer",
)
_DEFERRABLE_SQL = """
SELECT x.indexname AS name, x.indexdef AS definition
FROM pg_indexes x
JOIN pg_class i ON i.relname = x.indexname AND i.relnamespace = 'public'::regnamespace
JOIN pg_index ix ON ix.indexrelid = i.oid
WHERE x.schemaname = 'public' AND x.tablename = ANY(:tables)
  AND NOT ix.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
ORDER BY x.tablename, x.indexname
"""

# Made after the COPY by set-based SQL (demo/seed.py's), not per chunk.
DERIVED = ("customer_metrics", "tier_changes", "refunds", "benefit_redemptions")
_ACTIVE_BENEFITS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM benefits b JOIN tier_policies p ON p.id = b.policy_id WHERE p.status = 'active')"
)
# demo/seed.py's refunds and uses, for what a resumed run added: purchases without a refund, customers without a use
_NEW_REFUNDS_SQL = text(
    S._REFUNDS_SQL.text.replace(
        "FROM purchases p WHERE ",
        "FROM purchases p WHERE NOT EXISTS (SELECT 1 FROM refunds x WHERE x.purchase_id = p.id) AND ",
    )
)
_NEW_REDEMPTIONS_SQL = text(
    S._REDEMPTIONS_SQL.text.replace(
        "WHERE p.purchased_at > ",
        "WHERE NOT EXISTS (SELECT 1 FROM benefit_redemptions x WHERE x.customer_id = c.id) AND p.purchased_at > ",
    )
)
assert _NEW_REFUNDS_SQL.text != S._REFUNDS_SQL.text
assert _NEW_REDEMPTIONS_SQL.text != S._REDEMPTIONS_SQL.text

# Complaint rates per lifecycle stage (x1.33 complaints each): 0.5 complaints per customer overall.
_COMPLAINT_RATE = {"prospect": 0.10, "new": 0.30, "active": 0.38, "at_risk": 0.50, "churned": 0.50}
_SEVERITIES = (("low", 0.30), ("medium", 0.45), ("high", 0.20), ("critical", 0.05))
# Mean purchases per year of each segment (demo/seed.py SEGMENTS), scaled so the mean is 10 per customer.
_MEAN_RATE = sum(w * r for w, r, _ in S.SEGMENTS)
_SCALE = PURCHASES_PER_CUSTOMER / (1 - dict(S.STAGES)["prospect"]) / _MEAN_RATE / 1.105  # lognorm(0, .45) mean


def _head(chunk: int, tag: int) -> str:
    return f"{_ID_PREFIX:04x}{chunk >> 16:04x}-{chunk & 0xFFFF:04x}-{tag:04x}-0000-"


def gen_id(chunk: int, n: int, tag: int = 0) -> str:
    """Ordered ids: a fixed prefix, the chunk, the table's tag, then the position within the chunk. As text
    (asyncpg's COPY takes a uuid as text; text formats and pickles faster than ``uuid.UUID``)."""
    return f"{_head(chunk, tag)}{n:012x}"


class _BigIds:
    """Ordered, unique bigint ids (complaint events, survey answers) for one chunk: an encrypted value is
    bound to its row's id (infra/crypto.py), so the ids are made here, far above what the identity
    sequence gives (the sequence is moved past them after the load)."""

    def __init__(self, chunk: int) -> None:
        self.n = (1 << 40) + (chunk << 26)

    def __call__(self) -> int:
        self.n += 1
        return self.n


class _Ids:
    """Ordered, unique ids for one table within one chunk (the table's tag keeps the tables apart)."""

    def __init__(self, chunk: int, tag: int) -> None:
        self.head, self.n = _head(chunk, tag), 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.head}{self.n:012x}"


# ---------------------------------------------------------------- sensitive values


@dataclass
class Protect:
    """Stores sensitive values as the service does: encrypted by the column types of infra/tables.py
    (infra/crypto.py) and with the blind indexes of ``crypto.current().customer_indexes`` (what
    infra/repos/customers.create writes), values normalised as demo/seed.py does."""

    encrypted: bool

    def customer(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.encrypted:
            return row
        from infra import crypto

        national_id = row["national_id"]
        row.update(
            crypto.current().customer_indexes(
                {
                    "email": row["email"] and row["email"].lower(),
                    "phone": row["phone"],
                    "national_id": national_id and national_id.strip().upper(),
                    "name": row["name"],
                    "birth_date": row["birth_date"],
                }
            )
        )
        for name in ("email", "phone", "national_id", "birth_date", "address"):
            row[name] = t.customers.c[name].type.process_bind_param(crypto.for_row(row["id"], row[name]), None)
        return row

    def text(self, column: Any, row_id: Any, value: str | None) -> str | None:
        """A free-text value of an encrypted column (complaint descriptions and notes, survey answers) of
        the row ``row_id``."""
        if not self.encrypted or value is None:
            return value
        from infra import crypto

        return column.type.process_bind_param(crypto.ForRow(row_id, value), None)  # type: ignore[no-any-return]

    @property
    def extra_customer_columns(self) -> tuple[str, ...]:
        return S.BLIND_INDEX_COLUMNS if self.encrypted else ()


def protection(columns: set[str]) -> Protect:
    """What the database's columns call for: encryption once migration 0007 added the blind indexes."""
    return Protect(encrypted="email_bidx" in columns)


# ---------------------------------------------------------------- generation

_SSN_AREAS = tuple(a for a in range(1, 900) if a != 666)


def _phone(rng: random.Random, pool: Any) -> str:
    """demo/seed.py's phone without its validation per number (which costs more than the rest of a
    customer): the templates are valid numbers of the locale, only their trailing digits vary."""
    templates = pool.mobile if pool.mobile and (not pool.landline or rng.random() < 0.75) else pool.landline
    cc, nsn, vary = rng.choice(templates)
    return f"+{cc}{nsn[:-vary]}{rng.randrange(10**vary):0{vary}d}"


def _national_id(rng: random.Random, country: str, birth: Any, female: bool) -> str:
    if country == "US":  # demo/seed.py's SSN, without rebuilding the list of areas each time
        return f"{rng.choice(_SSN_AREAS):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    return S._national_id(rng, country, birth, female)


@dataclass(slots=True)
class _Cust:
    id: str
    created_at: datetime
    stage: str
    partner: int | None
    reach: tuple[str, ...]
    mood: float
    segment: int
    first_purchase: datetime | None = None
    last_purchase: datetime | None = None
    sample_purchase: datetime | None = None
    resolved: list[tuple[str, datetime, float, int]] = field(default_factory=list)


@dataclass
class Reference:
    partner_ids: list[uuid.UUID]
    surveys: dict[str, tuple[uuid.UUID, list[uuid.UUID]]]
    categories: list[str]
    causes: list[str]


@dataclass
class Stats:
    generate_s: float = 0.0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TABLES, 0.0))


class Generator:
    def __init__(self, n: int, seed: int, ref: datetime, reference: Reference, protect: Protect) -> None:
        self.n, self.seed, self.ref, self.refs, self.protect = n, seed, ref, reference, protect
        self.pools = []
        pool_size = max(60, min(400, n // 4))
        faker_seed = random.Random(seed).getrandbits(32)
        for i, spec in enumerate(S.LOCALES):
            fake = Faker(spec.locale)
            fake.seed_instance(faker_seed + i)
            self.pools.append(S._build_pool(spec, fake, pool_size))
        self.locale_weights = [s.weight for s in S.LOCALES]
        self.texts = S._Seeder(n, seed, ref, None, None)  # for _complaint_text only
        base_weights = {"delivery": 28, "product_quality": 22, "billing": 17, "service": 15, "website": 12, "other": 6}
        self.category_weights = tuple((c, float(base_weights.get(c, 5))) for c in reference.categories)
        self.cause_weights = {
            cat: tuple((code, float(S._ROOT_CAUSE_WEIGHTS.get(cat, {}).get(code, 1))) for code in reference.causes)
            for cat in reference.categories
        }

    # Every chunk draws from its own Random: a resumed run makes the same rows.
    def chunk(self, k: int, size: int) -> dict[str, list[tuple[Any, ...]]]:
        rng = random.Random(self.seed * 1_000_003 + k)
        out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLES}
        custs = self._customers(rng, k, size, out["customers"])
        self._purchases(rng, k, custs, out["purchases"])
        self._complaints(rng, k, custs, out["complaints"], out["complaint_events"])
        self._surveys(rng, k, custs, out)
        return out

    def _customers(self, rng: random.Random, k: int, size: int, rows: list[tuple[Any, ...]]) -> list[_Cust]:
        ref, ref_date, used = self.ref, self.ref.date(), set[str]()
        custs = []
        partners = S.PARTNERS
        for i in range(size):
            pool = rng.choices(self.pools, weights=self.locale_weights)[0]
            loc, country = pool.spec.locale, pool.spec.country
            female = rng.random() < 0.5
            first, first_ascii = rng.choice(pool.female if female else pool.male)
            last, last_ascii = rng.choice(pool.last)
            name = f"{last}{first}" if loc == "zh_CN" else (f"{last} {first}" if loc == "ja_JP" else f"{first} {last}")
            birth = ref_date - timedelta(days=int(rng.triangular(18.01, 85.99, 38) * 365.2425))
            stage = S._pick(rng, S.STAGES)
            days_ago = {
                "new": rng.uniform(0.5, 90),
                "prospect": rng.triangular(1, 1460, 1),
                "active": rng.triangular(100, 1460, 400),
                "at_risk": rng.uniform(300, 1460),
                "churned": rng.uniform(540, 1460),
            }[stage]
            created = ref - DAY * days_ago
            p, acc, partner = rng.random(), 0.0, None
            for j, spec in enumerate(partners):
                acc += spec.share
                if p < acc:
                    partner = j
                    break
            cid = gen_id(k, i + 1)
            external_ref = f"{partners[partner].prefix}-C{k:05d}{i:06d}" if partner is not None else None
            email = S._email(rng, pool, first_ascii, last_ascii, birth, used) if rng.random() > 0.02 else None
            phone = _phone(rng, pool) if rng.random() > 0.08 else None
            national_id = _national_id(rng, country, birth, female) if rng.random() < 0.7 else None
            place = rng.choice(pool.places)
            address = {
                "line1": rng.choice(pool.line1),
                "line2": rng.choice(pool.line2) if pool.line2[0] and rng.random() < 0.3 else None,
                "postalCode": place[0],
                "city": place[1],
                "country": country,
            }
            consent = [
                min(ref, created + DAY * rng.uniform(0, 30)) if contact is not None and rng.random() < prob else None
                for contact, prob in ((email, 0.62), (phone, 0.33), (phone, 0.18))
            ]
            reach = tuple(
                ch
                for ch, ok in zip(
                    ("email", "sms", "phone", "web", "in_app"), (*consent, True, rng.random() < 0.4), strict=True
                )
                if ok
            )
            segment = rng.choices(range(len(S.SEGMENTS)), weights=[sg[0] for sg in S.SEGMENTS])[0]
            mood = rng.gauss(0, 1) + {"active": 0.3, "new": 0.2, "at_risk": -0.4, "churned": -0.8}.get(stage, 0.0)
            custs.append(_Cust(cid, created, stage, partner, reach, mood + 0.15 * segment, segment))
            row = {
                "id": cid,
                "partner_id": self.refs.partner_ids[partner] if partner is not None else None,
                "external_ref": external_ref,
                "name": name,
                "email": email,
                "phone": phone,
                "national_id": national_id,
                "birth_date": birth if rng.random() > 0.05 else None,
                "address": address,
                "locale": loc,
                "lifecycle_stage": stage,
                "consent_email_at": consent[0],
                "consent_sms_at": consent[1],
                "consent_phone_at": consent[2],
                "created_at": created,
                "updated_at": created + (ref - created) * rng.random(),
            }
            row = self.protect.customer(row)
            if isinstance(row["address"], dict):
                row["address"] = orjson.dumps(row["address"]).decode()
            rows.append(tuple(row[c] for c in (*CUSTOMER_COLUMNS, *self.protect.extra_customer_columns)))
        return custs

    def _purchases(self, rng: random.Random, k: int, custs: Sequence[_Cust], rows: list[tuple[Any, ...]]) -> None:
        ids = _Ids(k, 1)
        ref = self.ref
        own = S._OWN_PURCHASE_CHANNELS
        for c in custs:
            if c.stage == "prospect":
                continue
            start = c.created_at + HOUR
            if c.stage == "at_risk":
                end = ref - DAY * rng.uniform(100, 240)
            elif c.stage == "churned":
                end = ref - DAY * rng.uniform(380, 520)
            else:
                end = ref - HOUR
            span = max((end - start).total_seconds(), 3600.0)
            _, rate, basket_median = S.SEGMENTS[c.segment]
            count = max(1, int(rate * _SCALE * rng.lognormvariate(0, 0.45) + 0.5))
            basket = basket_median * rng.lognormvariate(0, 0.45)
            span_td = timedelta(seconds=span)
            times = sorted([start + span_td * rng.random() for _ in range(count)])
            if c.stage == "active" and times[-1] < ref - DAY * 60:
                times[-1] = max(start, ref - DAY * rng.uniform(0.2, 60))
            partner_id = self.refs.partner_ids[c.partner] if c.partner is not None else None
            prefix = S.PARTNERS[c.partner].prefix if c.partner is not None else None
            channels = S.PARTNERS[c.partner].purchase_channels if c.partner is not None else own
            for at in times:
                cents = max(100, round(basket * rng.lognormvariate(0, 0.55) * 100))
                if rng.random() < 0.35:
                    cents = cents // 100 * 100 + 99
                pid = ids()
                rows.append(
                    (
                        pid,
                        c.id,
                        partner_id,
                        f"{prefix}-O{k:05d}{ids.n:07d}" if prefix else None,
                        f"{cents // 100}.{cents % 100:02d}",
                        "EUR",
                        S._pick(rng, channels),
                        at,
                        min(ref, at + TWO_HOURS * rng.random()),
                    )
                )
            c.first_purchase, c.last_purchase = times[0], times[-1]
            c.sample_purchase = rng.choice(times)

    def _complaints(
        self, rng: random.Random, k: int, custs: Sequence[_Cust], rows: list[tuple[Any, ...]], events: list[Any]
    ) -> None:
        ids, event_ids = _Ids(k, 2), _BigIds(k)
        ref = self.ref
        seal = functools.partial(self.protect.text, t.complaints.c.description)
        seal_note = functools.partial(self.protect.text, t.complaint_events.c.note)
        for c in custs:
            if rng.random() >= _COMPLAINT_RATE[c.stage]:
                continue
            p = rng.random()
            how_many = 1 if p < 0.76 else (2 if p < 0.93 else (3 if p < 0.98 else 4))
            for _ in range(how_many):
                draft = S.complaint(
                    rng, c, ref, self.category_weights, _SEVERITIES, self.cause_weights, self.texts._complaint_text
                )
                tl, opened = draft.timeline, draft.opened
                kid = ids()
                partner_id = self.refs.partner_ids[c.partner] if c.partner is not None else None
                external_id = f"{S.PARTNERS[c.partner].prefix}-T{k:05d}{ids.n:06d}" if partner_id else None
                rows.append(draft.row(kid, c.id, partner_id, external_id, seal(kid, draft.description)))
                for e in tl.events:
                    eid = event_ids()
                    events.append((eid, kid, *e[:4], seal_note(eid, e[4])))
                c.mood -= 0.3
                if tl.resolved_at is not None:
                    c.resolved.append(
                        (kid, tl.resolved_at, (tl.resolved_at - opened).total_seconds() / 86400, tl.reopen_count)
                    )

    def _surveys(self, rng: random.Random, k: int, custs: Sequence[_Cust], out: dict[str, list[Any]]) -> None:
        ids, answer_ids = _Ids(k, 3), _BigIds(k)
        ref = self.ref
        specs = {s.key: s for s in S.SURVEYS}
        invitations, responses, answers = out["survey_invitations"], out["survey_responses"], out["survey_answers"]
        seal = functools.partial(self.protect.text, t.survey_answers.c.text)

        def invite(c: _Cust, key: str, sent: datetime, complaint: str | None, respond: float) -> str | None:
            channels = [ch for ch in specs[key].channels if ch in c.reach]
            if not channels or sent > ref:
                return None
            channel = rng.choice(channels)
            survey_id = self.refs.surveys[key][0]
            invitations.append((survey_id, c.id, complaint, channel, sent))
            submitted = sent + HOUR * rng.expovariate(1 / 20)
            if rng.random() >= respond:
                reminder = sent + DAY * 5
                if rng.random() >= 0.6 or reminder > ref:
                    return None
                invitations.append((survey_id, c.id, complaint, channel, reminder))
                if rng.random() >= 0.25:
                    return None
                submitted = reminder + HOUR * rng.expovariate(1 / 20)
            if submitted > ref:
                return None
            rid = ids()
            partner_id = external_id = None
            if c.partner is not None:
                partner_id = self.refs.partner_ids[c.partner]
                external_id = f"{S.PARTNERS[c.partner].prefix}-R{k:05d}{ids.n:06d}"
            responses.append((rid, survey_id, c.id, complaint, partner_id, external_id, channel, submitted))
            return rid

        nps_q, reason_q = self.refs.surveys["nps"][1]
        choice_q, delivery_q = self.refs.surveys["delivery"][1]
        csat_q, ces_q = self.refs.surveys["csat"][1]
        for c in custs:
            if c.first_purchase is not None and rng.random() < 0.6:
                lo = c.first_purchase + DAY * 7
                hi = min(ref, (c.last_purchase or ref) + DAY * 120)
                if lo < hi and (rid := invite(c, "nps", lo + (hi - lo) * rng.random(), None, 0.5)):
                    nps = S._clamp(7.9 + 1.9 * c.mood + rng.gauss(0, 1.1), "nps")
                    answers.append((answer_ids(), rid, nps_q, nps, None, None))
                    if rng.random() < 0.4:
                        band = "promoter" if nps >= 9 else ("passive" if nps >= 7 else "detractor")
                        aid = answer_ids()
                        comment = rng.choice(S._NPS_COMMENTS[band])
                        answers.append((aid, rid, reason_q, None, None, seal(aid, comment)))
            if c.sample_purchase is not None and rng.random() < 0.2:
                if rid := invite(c, "delivery", c.sample_purchase + DAY * rng.uniform(2, 6), None, 0.4):
                    option = rng.choices(S.DELIVERY_OPTIONS, weights=(15, 55, 20, 7, 3))[0]
                    base = {0: 4.6, 1: 4.2, 2: 3.1, 3: 2.0, 4: 1.3}[S.DELIVERY_OPTIONS.index(option)]
                    answers.append((answer_ids(), rid, choice_q, None, [option], None))
                    score = S._clamp(base + 0.3 * c.mood + rng.gauss(0, 0.6), "csat")
                    answers.append((answer_ids(), rid, delivery_q, score, None, None))
            for complaint_id, resolved_at, days, reopens in c.resolved:
                if rng.random() >= 0.85:
                    continue
                if rid := invite(c, "csat", resolved_at + HOUR * rng.uniform(1, 6), complaint_id, 0.45):
                    csat = S._clamp(4.0 + 0.6 * c.mood - 0.2 * min(days, 8) - 0.8 * reopens + rng.gauss(0, 0.7), "csat")
                    answers.append((answer_ids(), rid, csat_q, csat, None, None))
                    ces = S._clamp(1 + (csat - 1) * 1.5 + rng.gauss(0, 0.7), "ces")
                    answers.append((answer_ids(), rid, ces_q, ces, None, None))


# ---------------------------------------------------------------- loading


async def _reference(conn: asyncpg.Connection, seed: int, ref: datetime) -> Reference:
    """Partners and surveys of demo/seed.py (made by its own code the first time), read back on a resume."""
    partner_ids = []
    for spec in S.PARTNERS:
        partner_ids.append(await conn.fetchval("SELECT id FROM partners WHERE name = $1", spec.name))
    surveys: dict[str, tuple[uuid.UUID, list[uuid.UUID]]] = {}
    for spec in S.SURVEYS:
        sid = await conn.fetchval("SELECT id FROM surveys WHERE title = $1 ORDER BY created_at LIMIT 1", spec.title)
        qids = [
            r["id"]
            for r in await conn.fetch("SELECT id FROM survey_questions WHERE survey_id = $1 ORDER BY position", sid)
        ]
        surveys[spec.key] = (sid, qids)
    categories = [
        r["code"] for r in await conn.fetch("SELECT code FROM complaint_categories WHERE active ORDER BY code")
    ]
    causes = [r["code"] for r in await conn.fetch("SELECT code FROM root_causes WHERE active ORDER BY code")]
    return Reference(partner_ids, surveys, categories, causes)


def _replica_engine(url: str, settings: Settings) -> Any:
    """An engine whose sessions skip triggers (``session_replication_role = replica``): the report summaries'
    triggers on customers (rebuilt at the end) and the foreign-key checks (the keys hold by construction)."""
    engine = create_engine(url, settings)

    @event.listens_for(engine.sync_engine, "connect")
    def _replica(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET session_replication_role = replica")
        cursor.close()

    return engine


async def _defer_indexes(engine: Any) -> int:
    """Record the deferrable secondary indexes of ``DEFERRED_TABLES`` and drop them, in one transaction (an
    interrupted run finds either both or neither). Definitions already recorded by an interrupted run are
    kept. Returns how many were dropped."""
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE IF NOT EXISTS {DEFER_TABLE} (name text PRIMARY KEY, definition text)"))
        found = (await conn.execute(text(_DEFERRABLE_SQL), {"tables": list(DEFERRED_TABLES)})).all()
        for name, definition in found:
            await conn.execute(
                text(f"INSERT INTO {DEFER_TABLE} VALUES (:n, :d) ON CONFLICT (name) DO NOTHING"),
                {"n": name, "d": definition},
            )
            await conn.execute(text(f'DROP INDEX public."{name}"'))
    return len(found)


async def _deferred(engine: Any) -> bool:
    """Whether a bulk phase left indexes to build (the bookkeeping table exists)."""
    async with engine.connect() as conn:
        return bool((await conn.execute(text(f"SELECT to_regclass('public.{DEFER_TABLE}') IS NOT NULL"))).scalar())


async def _restore_indexes(engine: Any, names: Sequence[str] | None = None) -> int:
    """Build the recorded indexes (those of ``names``, or all) that do not exist, each in its own transaction
    (an interrupted build leaves no index: the next run builds it), then ANALYZE the tables that got an
    expression index (its statistics). With every index back, the bookkeeping table is dropped. Returns how
    many were built."""
    if not await _deferred(engine):
        return 0
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SET maintenance_work_mem = '1GB'"))
        await conn.execute(text("SET max_parallel_maintenance_workers = 2"))
        missing = (
            await conn.execute(
                text(
                    f"SELECT name, definition FROM {DEFER_TABLE}"
                    " WHERE to_regclass('public.' || quote_ident(name)) IS NULL"
                    " AND (CAST(:names AS text[]) IS NULL OR name = ANY(CAST(:names AS text[])))"
                    " ORDER BY name"
                ),
                {"names": list(names) if names is not None else None},
            )
        ).all()
        for _, definition in missing:
            await conn.execute(text(definition))
        if missing:
            expressions = (
                await conn.execute(
                    text(
                        "SELECT DISTINCT i.indrelid::regclass::text FROM pg_index i"
                        " WHERE i.indexprs IS NOT NULL AND i.indexrelid::regclass::text = ANY(:names)"
                    ),
                    {"names": [name for name, _ in missing]},
                )
            ).scalars()
            for table in expressions:
                await conn.execute(text(f"ANALYZE {table}"))
        if names is None:
            await conn.execute(text(f"DROP TABLE {DEFER_TABLE}"))
        await conn.execute(text("RESET maintenance_work_mem"))
        await conn.execute(text("RESET max_parallel_maintenance_workers"))
    return len(missing)


@dataclass
class Report:
    customers: int
    counts: dict[str, int]  # rows per table now
    rows: dict[str, int]  # rows per step
    seconds: dict[str, float]  # seconds per step (a load step: its share of the generation and its COPY)
    reused: bool
    total_seconds: float

    def markdown(self) -> str:
        lines = ["| step | rows | seconds | rows/s |", "|---|---:|---:|---:|"]
        for name, secs in self.seconds.items():
            rows = self.rows.get(name)
            if rows is None:
                lines.append(f"| {name} | | {secs:.1f} | |")
            else:
                rate = f"{rows / secs:,.0f}" if secs > 0.05 else ""
                lines.append(f"| {name} | {rows:,} | {secs:.1f} | {rate} |")
        lines.append(f"| **total** | | **{self.total_seconds:.1f}** | |")
        return "\n".join(lines)


_WORKER: Generator | None = None


def _init_worker(args: tuple[Any, ...]) -> None:
    global _WORKER
    _WORKER = Generator(*args)


def _make_chunk(k: int, size: int) -> tuple[dict[str, list[tuple[Any, ...]]], float]:
    assert _WORKER is not None
    t0 = time.process_time()
    rows = _WORKER.chunk(k, size)
    return rows, time.process_time() - t0


async def _chunks(
    workers: int, ks: range, customers: int, args: tuple[Any, ...]
) -> AsyncIterator[tuple[dict[str, list[tuple[Any, ...]]], float]]:
    """The chunks' rows in order, made by ``workers`` processes a few chunks ahead of the COPY (in this
    process when ``workers`` is 0)."""
    sizes = {k: min(CHUNK, customers - k * CHUNK) for k in ks}
    if workers <= 0:
        _init_worker(args)
        for k in ks:
            yield _make_chunk(k, sizes[k])
        return
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding connections and threads
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(args,)) as pool:
        pending: deque[asyncio.Future[Any]] = deque()
        it = iter(ks)
        for k in itertools.islice(it, workers + 1):
            pending.append(loop.run_in_executor(pool, _make_chunk, k, sizes[k]))
        while pending:
            rows = await pending.popleft()
            for k in itertools.islice(it, 1):
                pending.append(loop.run_in_executor(pool, _make_chunk, k, sizes[k]))
            yield rows


async def generate(
    url: str,
    customers: int,
    *,
    seed: int = 7,
    progress: bool = True,
    churn: bool = False,
    now: datetime | None = None,
    workers: int = 2,
) -> Report:
    """Fill the migrated database at ``url`` with ``customers`` customers and everything around them, or finish
    an interrupted fill; a complete database is left as it is (``reused``)."""
    started = time.perf_counter()
    ref = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    settings = Settings(_env_file=None, statement_timeout_ms=0)  # type: ignore[call-arg]
    engine = create_engine(url, settings)
    stats = Stats()
    steps: dict[str, float] = {}
    chunks = (customers + CHUNK - 1) // CHUNK
    columns = (TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    reused = False
    try:
        async with engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            have = await raw.fetchval("SELECT count(*) FROM customers")
            foreign = await raw.fetchval(
                "SELECT count(*) FROM customers WHERE id < $1 OR id > $2",
                gen_id(0, 0),
                gen_id(0xFFFFFFFF, 0),
            )
            if foreign:
                raise RuntimeError(f"{url}: holds {foreign} customers not made by bench/generate.py")
            if not await raw.fetchval("SELECT count(*) FROM surveys"):
                seeder = S._Seeder(customers, seed, ref, raw, None)  # type: ignore[arg-type]
                await seeder.reference(conn)
            reference = await _reference(raw, seed, ref)
            cols = {
                r["column_name"]
                for r in await raw.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'"
                )
            }
        protect = protection(cols)
        done_chunks = have // CHUNK if have < customers else chunks
        with Progress(*columns, disable=not progress) as bar:
            tasks: dict[str, TaskID] = {}
            if done_chunks < chunks:
                expected = {
                    "customers": customers,
                    "purchases": customers * PURCHASES_PER_CUSTOMER,
                    "complaints": customers // 2,
                    "complaint_events": customers * 5 // 2,
                    "survey_invitations": customers,
                    "survey_responses": customers * 2 // 3,
                    "survey_answers": customers,
                }
                tasks = {name: bar.add_task(name, total=expected[name]) for name in TABLES}
                columns_of = {
                    "customers": (*CUSTOMER_COLUMNS, *protect.extra_customer_columns),
                    "purchases": PURCHASE_COLUMNS,
                    "complaints": COMPLAINT_COLUMNS,
                    "complaint_events": EVENT_COLUMNS,
                    "survey_invitations": INVITATION_COLUMNS,
                    "survey_responses": RESPONSE_COLUMNS,
                    "survey_answers": ANSWER_COLUMNS,
                }
                t0 = time.perf_counter()
                await _defer_indexes(engine)
                steps["indexes (record and drop)"] = time.perf_counter() - t0
                t_load = time.perf_counter()
                async for rows, gen_s in _chunks(
                    workers, range(done_chunks, chunks), customers, (customers, seed, ref, reference, protect)
                ):
                    stats.generate_s += gen_s
                    async with engine.begin() as conn:
                        # Foreign keys hold by construction (and tests/integration/test_bench_generate.py checks
                        # them): the replica role skips their per-row triggers, the largest cost of the COPY, and
                        # the report summaries' triggers (rebuilt below). Through SQLAlchemy, not the raw
                        # connection: that opens the chunk's transaction the COPY joins (a SET LOCAL outside a
                        # transaction is a no-op, and every COPY would commit on its own).
                        await conn.execute(text("SET LOCAL session_replication_role = replica"))
                        await conn.execute(text("SET LOCAL synchronous_commit = off"))
                        raw = (await conn.get_raw_connection()).driver_connection
                        for name in TABLES:
                            t1 = time.perf_counter()
                            if rows[name]:
                                await raw.copy_records_to_table(name, records=rows[name], columns=columns_of[name])
                            stats.seconds[name] += time.perf_counter() - t1
                            stats.rows[name] += len(rows[name])
                            bar.update(
                                tasks[name], completed=stats.rows[name], total=max(expected[name], stats.rows[name])
                            )
                steps["load, wall (generation in parallel)"] = time.perf_counter() - t_load
                steps["generation, CPU of the workers"] = stats.generate_s
                steps.update({f"COPY {name}": stats.seconds[name] for name in TABLES})
                async with engine.begin() as conn:  # the ids made here (``_BigIds``) are the sequences' past
                    for name in ("complaint_events", "survey_answers"):
                        await conn.execute(text(S.SYNC_SEQUENCE_SQL.format(table=name)))
            else:
                reused = True

            # Benefits and refunds (set-based, once): before the metrics, which count spend net of refunds; a
            # database made before they were generated gets them now, and its metrics and tiers again.
            refunds_added = False
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL session_replication_role = replica"))  # FKs hold by construction
                if not (await conn.execute(text(_ACTIVE_BENEFITS_SQL))).scalar_one():
                    await conn.execute(S._BENEFITS_SQL)
                if not reused or not (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM refunds)"))).scalar_one():
                    t0 = time.perf_counter()
                    refunds_added = bool((await conn.execute(_NEW_REFUNDS_SQL, {"ref": ref})).rowcount)
                    steps["refunds"] = time.perf_counter() - t0

            # Metrics and tiers by the service's own full re-tier (resumable), then what depends on the tier.
            from infra.tiering import run_full_retier

            t0 = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE " + ", ".join(TABLES)))
                untiered = (
                    await conn.execute(text("SELECT count(*) FROM customers WHERE tier_code IS NULL"))
                ).scalar_one()
                if refunds_added and not untiered:  # tiered before its refunds: metrics and tiers again
                    untiered = (await conn.execute(text("SELECT count(*) FROM customers"))).scalar_one()
            steps["analyze"] = time.perf_counter() - t0
            if untiered:
                t0 = time.perf_counter()
                if await _restore_indexes(engine, RETIER_INDEXES):
                    steps["indexes (for metrics & tiers)"] = time.perf_counter() - t0
                task = bar.add_task("metrics & tiers", total=untiered)
                t0 = time.perf_counter()
                retier_engine = _replica_engine(url, settings)
                try:
                    await run_full_retier(
                        retier_engine,
                        actor="bench-generate",
                        on_progress=lambda p: bar.update(task, completed=p.done, total=p.total),
                    )
                finally:
                    await retier_engine.dispose()
                steps["metrics & tiers"] = time.perf_counter() - t0
            async with engine.begin() as conn:
                if (
                    "metrics & tiers" in steps
                    or not (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM benefit_redemptions)"))).scalar_one()
                ):
                    t0 = time.perf_counter()
                    await conn.execute(text("SET LOCAL session_replication_role = replica"))
                    await conn.execute(_NEW_REDEMPTIONS_SQL, {"ref": ref})
                    steps["benefit redemptions"] = time.perf_counter() - t0
            async with engine.begin() as conn:
                todo = (
                    await conn.execute(text("SELECT count(*) FROM complaints WHERE sla_policy_version IS NULL"))
                ).scalar_one()
                if todo:
                    t0 = time.perf_counter()
                    # The report summaries' triggers skipped here too (the summaries are rebuilt below).
                    await conn.execute(text("SET LOCAL session_replication_role = replica"))
                    await conn.execute(S._COMPLAINT_TIERS_SQL)
                    await conn.execute(S._RESPONSE_TIERS_SQL)
                    await conn.execute(S._INVITATION_TIERS_SQL)
                    steps["SLA clocks, tiers at open/answer"] = time.perf_counter() - t0
            if churn:
                from infra.churn import recompute_in_chunks

                t0 = time.perf_counter()
                await recompute_in_chunks(engine)
                steps["churn scores"] = time.perf_counter() - t0
            # Something was written (or a bulk phase was interrupted after writing): summaries, a fresh
            # visibility map and statistics, then the deferred indexes (after the VACUUM: it then has no
            # secondary index to clean of the UPDATEs' dead rows).
            deferred = await _deferred(engine)
            if not reused or len(steps) > 1 or deferred:
                t0 = time.perf_counter()  # the COPY skipped the triggers (replica role): refill the report summaries
                async with engine.begin() as conn:
                    await conn.execute(text("SELECT report_summaries_rebuild()"))
                    # (it empties the economics deltas too: nothing is left to compact)
                    await conn.execute(text("SELECT economics_summaries_rebuild()"))
                    await conn.execute(text("SELECT benefit_spend_rebuild()"))
                steps["report summaries (rebuild)"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                async with engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(text("VACUUM ANALYZE " + ", ".join((*TABLES, *DERIVED))))
                steps["vacuum analyze"] = time.perf_counter() - t0
            if deferred:
                t0 = time.perf_counter()
                await _restore_indexes(engine)
                steps["indexes (rebuild)"] = time.perf_counter() - t0
        async with engine.connect() as conn:
            counts = {
                name: (await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one()
                for name in (*TABLES, *DERIVED)
            }
    finally:
        await engine.dispose()
    rows = {f"COPY {name}": counts[name] for name in TABLES}
    rows["metrics & tiers"] = counts["customer_metrics"]
    rows["refunds"] = counts["refunds"]
    rows["benefit redemptions"] = counts["benefit_redemptions"]
    return Report(customers, counts, rows, steps, reused, time.perf_counter() - started)


async def main(customers: int, name: str | None, churn: bool, workers: int) -> Report:
    url = await migrated_database(name or f"tierwise_bench_{customers}")
    return await generate(url, customers, churn=churn, workers=workers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--database", default=None, help="default: tierwise_bench_<customers>")
    parser.add_argument("--churn", action="store_true", help="also score every customer's churn risk")
    parser.add_argument("--workers", type=int, default=2, help="generating processes (0: in this one)")
    args = parser.parse_args()
    report = asyncio.run(main(args.customers, args.database, args.churn, args.workers))
    print(f"{'reused' if report.reused else 'generated'}: {report.customers:,} customers")
    print(report.markdown())
