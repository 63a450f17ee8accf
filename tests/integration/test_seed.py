"""The demo seed writes consistent, plausible and deterministic data, tiered like the service would."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import phonenumbers
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from demo.seed import _TEAMS, BLIND_INDEX_COLUMNS, SeedReport, is_empty, seed
from domain.complaints import TRANSITIONS
from domain.customers import normalize_customer
from domain.enums import SCORE_RANGES
from infra import crypto
from infra import tables as t
from infra.db import create_engine
from tests.conftest import test_settings

CUSTOMERS = 200
FreshUrl = Callable[[], Awaitable[str]]


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def _customers(engine: AsyncEngine, *columns: str) -> list[Any]:
    """Customer columns through the table's types: sensitive ones decrypted (they are encrypted at rest)."""
    async with engine.connect() as conn:
        stmt = select(*(t.customers.c[name] for name in columns)).order_by(t.customers.c.id)
        return list((await conn.execute(stmt)).all())


@pytest.fixture
async def seeded(fresh_database_url: FreshUrl) -> AsyncIterator[tuple[AsyncEngine, SeedReport]]:
    engine = create_engine(await fresh_database_url(), test_settings())
    try:
        assert await is_empty(engine)
        report = await seed(engine, CUSTOMERS, seed=7, progress=False)
        assert not await is_empty(engine)
        yield engine, report
    finally:
        await engine.dispose()


async def test_report_counts_match_the_tables(seeded: tuple[AsyncEngine, SeedReport]) -> None:
    engine, report = seeded
    counts = report.table_counts()
    tables = {name: n for name, n in counts.items() if name != "tier_changes"}
    actual = {name: (await _rows(engine, f"SELECT count(*) FROM {name}"))[0][0] for name in tables}
    assert actual == tables
    assert report.customers == CUSTOMERS
    assert report.customer_metrics == CUSTOMERS
    # Every customer got its first tier from the seed.
    assert (await _rows(engine, "SELECT count(*) FROM tier_changes WHERE actor = 'seed'"))[0][0] == CUSTOMERS
    assert report.tier_changes == CUSTOMERS
    # Plausible volumes: ~10 purchases per customer, complaints and survey answers for a share of them.
    assert 5 * CUSTOMERS <= report.purchases <= 20 * CUSTOMERS
    assert report.complaints > 0
    assert report.complaint_events > report.complaints
    assert report.survey_responses > 0
    assert report.survey_answers >= report.survey_responses
    assert (report.partners, report.surveys) == (3, 3)


async def test_every_customer_has_metrics_and_a_tier_of_the_active_policy(
    seeded: tuple[AsyncEngine, SeedReport],
) -> None:
    engine, _ = seeded
    [row] = await _rows(
        engine,
        """
        SELECT count(*) FILTER (WHERE m.customer_id IS NULL) AS without_metrics,
               count(*) FILTER (WHERE c.tier_code IS NULL) AS without_tier,
               count(*) FILTER (WHERE c.tier_code NOT IN (
                   SELECT t.code FROM tiers t JOIN tier_policies p ON p.id = t.policy_id WHERE p.status = 'active'
               )) AS unknown_tier,
               count(DISTINCT c.tier_code) AS tiers_used
        FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id
        """,
    )
    assert (row.without_metrics, row.without_tier, row.unknown_tier) == (0, 0, 0)
    assert row.tiers_used >= 2
    [untiered] = await _rows(
        engine,
        "SELECT (SELECT count(*) FROM complaints WHERE tier_at_open IS NULL),"
        " (SELECT count(*) FROM survey_responses WHERE tier_at_response IS NULL)",
    )
    assert tuple(untiered) == (0, 0)


async def test_metrics_agree_with_a_direct_aggregate(seeded: tuple[AsyncEngine, SeedReport]) -> None:
    engine, _ = seeded
    picked = await _rows(
        engine,
        """
        (SELECT customer_id FROM customer_metrics ORDER BY lifetime_spend DESC, customer_id LIMIT 2)
        UNION (SELECT customer_id FROM customer_metrics WHERE order_count = 0 ORDER BY customer_id LIMIT 1)
        UNION (SELECT customer_id FROM customer_metrics WHERE latest_nps IS NOT NULL ORDER BY customer_id LIMIT 2)
        UNION (SELECT customer_id FROM customer_metrics WHERE latest_csat IS NOT NULL ORDER BY customer_id LIMIT 2)
        UNION (SELECT customer_id FROM complaints GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 2)
        """,
    )
    ids = [r.customer_id for r in picked]
    assert len(ids) >= 6
    window = "now() - interval '365 days'"
    latest = """(SELECT a.score FROM survey_answers a
                 JOIN survey_responses r ON r.id = a.response_id
                 JOIN survey_questions q ON q.id = a.question_id
                 WHERE r.customer_id = c.id AND q.kind = '{kind}' AND a.score IS NOT NULL
                 ORDER BY r.submitted_at DESC LIMIT 1)"""
    # spend is net of refunds (the seed returns one purchase in 40); a purchase refunded in full is no order
    refunded = "(SELECT coalesce(sum(r.amount), 0) FROM refunds r WHERE r.purchase_id = p.id)"
    direct = await _rows(
        engine,
        f"""
        SELECT c.id,
               (SELECT coalesce(sum(p.amount - {refunded}), 0) FROM purchases p WHERE p.customer_id = c.id),
               (SELECT count(*) FROM purchases p WHERE p.customer_id = c.id AND p.amount > {refunded}),
               (SELECT coalesce(sum(p.amount - {refunded}), 0) FROM purchases p
                WHERE p.customer_id = c.id AND p.purchased_at > {window}),
               (SELECT count(*) FROM purchases p
                WHERE p.customer_id = c.id AND p.purchased_at > {window} AND p.amount > {refunded}),
               (SELECT min(purchased_at) FROM purchases WHERE customer_id = c.id),
               (SELECT max(purchased_at) FROM purchases WHERE customer_id = c.id),
               (SELECT count(*) FROM complaints WHERE customer_id = c.id AND status NOT IN ('resolved', 'closed')),
               (SELECT count(*) FROM complaints WHERE customer_id = c.id AND opened_at > {window}),
               {latest.format(kind="nps")},
               {latest.format(kind="csat")}
        FROM customers c WHERE c.id = ANY(:ids) ORDER BY c.id
        """,
        ids=ids,
    )
    stored = await _rows(
        engine,
        """
        SELECT customer_id, lifetime_spend, order_count, spend_12m, orders_12m, first_purchase_at,
               last_purchase_at, open_complaints, complaints_12m, latest_nps, latest_csat
        FROM customer_metrics WHERE customer_id = ANY(:ids) ORDER BY customer_id
        """,
        ids=ids,
    )
    assert [tuple(r) for r in stored] == [tuple(r) for r in direct]
    assert any(r[1] > 0 for r in direct)
    assert any(r[2] == 0 for r in direct)


async def test_the_same_seed_gives_the_same_data(fresh_database_url: FreshUrl) -> None:
    reference = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    people: list[list[tuple[Any, ...]]] = []
    for seed_value in (11, 11, 12):
        engine = create_engine(await fresh_database_url(), test_settings())
        try:
            await seed(engine, 60, seed=seed_value, progress=False, now=reference)
            rows = await _customers(engine, "id", "name", "email", "phone", "national_id", "birth_date", "locale")
            totals = await _rows(engine, "SELECT count(*), sum(amount) FROM purchases")
            people.append([tuple(r) for r in rows] + [tuple(totals[0])])
        finally:
            await engine.dispose()
    assert people[0] == people[1]
    assert people[0] != people[2]
    names = {r[1] for r in people[0][:-1]}
    assert len(names) > 50  # not one name repeated


async def test_scores_are_within_the_range_of_their_question_kind(seeded: tuple[AsyncEngine, SeedReport]) -> None:
    engine, _ = seeded
    rows = await _rows(
        engine,
        """
        SELECT q.kind, q.options, a.score, a.choices, a.text
        FROM survey_answers a JOIN survey_questions q ON q.id = a.question_id
        """,
    )
    kinds = {r.kind for r in rows}
    assert set(SCORE_RANGES) <= kinds
    for r in rows:
        if r.kind in SCORE_RANGES:
            low, high = SCORE_RANGES[r.kind]
            assert r.score is not None, r
            assert low <= r.score <= high, r
        elif r.kind == "single_choice":
            assert r.score is None, r
            assert len(r.choices) == 1, r
            assert r.choices[0] in r.options, r
        else:
            assert r.kind == "text", r
            assert r.text.strip(), r


async def test_at_most_one_response_per_customer_and_survey(seeded: tuple[AsyncEngine, SeedReport]) -> None:
    engine, _ = seeded
    repeated = await _rows(
        engine,
        """
        SELECT r.survey_id, r.customer_id, r.complaint_id, count(*)
        FROM survey_responses r
        GROUP BY r.survey_id, r.customer_id, r.complaint_id
        HAVING count(*) > 1
        """,
    )
    assert repeated == []
    [row] = await _rows(
        engine,
        """
        SELECT count(*) FILTER (WHERE s.per_complaint AND (k.id IS NULL OR k.customer_id <> r.customer_id
                                                           OR k.resolved_at IS NULL))
                   AS per_complaint_broken,
               count(*) FILTER (WHERE NOT s.per_complaint AND r.complaint_id IS NOT NULL) AS stray_complaint,
               count(*) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM survey_invitations i
                   WHERE i.survey_id = r.survey_id AND i.customer_id = r.customer_id
                     AND i.complaint_id IS NOT DISTINCT FROM r.complaint_id AND i.sent_at <= r.submitted_at
               )) AS uninvited,
               count(*) FILTER (WHERE r.channel <> ALL (s.channels)) AS wrong_channel
        FROM survey_responses r
        JOIN surveys s ON s.id = r.survey_id
        LEFT JOIN complaints k ON k.id = r.complaint_id
        """,
    )
    assert tuple(row) == (0, 0, 0, 0)


async def test_contact_data_is_well_formed(seeded: tuple[AsyncEngine, SeedReport]) -> None:
    engine, _ = seeded
    rows = await _customers(engine, "phone", "email", "address", "birth_date", "created_at")
    phones = [r.phone for r in rows if r.phone is not None]
    assert len(phones) > CUSTOMERS * 0.8
    for phone in phones:
        number = phonenumbers.parse(phone, None)
        assert phonenumbers.is_valid_number(number), phone
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == phone
    emails = [r.email for r in rows if r.email is not None]
    assert len(set(emails)) == len(emails)
    assert all(e == e.lower() and e.count("@") == 1 and e.isascii() for e in emails)
    today = datetime.now(UTC).date()
    for r in rows:
        # as the write path stores them: an empty second line is left out, not stored as null
        assert (
            {"line1", "postalCode", "city", "country"}
            <= set(r.address)
            <= {"line1", "line2", "postalCode", "city", "country"}
        )
        assert all(r.address.values()), r.address
        assert len(r.address["country"]) == 2
        assert r.address["city"]
        assert r.address["line1"]
        if r.birth_date is not None:
            age = (today - r.birth_date).days / 365.25
            assert 18 <= age <= 86, r.birth_date
    locales = await _rows(engine, "SELECT count(DISTINCT locale) FROM customers")
    assert locales[0][0] >= 5


async def test_contact_data_is_normalised_and_indexed_as_the_write_path_does(
    seeded: tuple[AsyncEngine, SeedReport],
) -> None:
    """The seed computes blind indexes itself (before COPY): they must be the write path's, on values the
    write path's normalisation leaves unchanged, or equality filters and duplicate matching miss them."""
    engine, _ = seeded
    sources = ("name", "email", "phone", "national_id", "birth_date")
    rows = await _customers(engine, *sources, *BLIND_INDEX_COLUMNS)
    today = datetime.now(UTC).date()
    keyring = crypto.current()
    for r in rows:
        values = {k: getattr(r, k) for k in sources}
        given = {k: v for k, v in values.items() if v is not None}
        assert normalize_customer(given, default_region="US", today=today, creating=True) == given
        assert keyring.customer_indexes(values) == {c: getattr(r, c) for c in BLIND_INDEX_COLUMNS}
    for column in BLIND_INDEX_COLUMNS:
        assert sum(getattr(r, column) is not None for r in rows) > CUSTOMERS / 2, column


async def test_complaints_walk_legal_transitions_with_consistent_timestamps(
    seeded: tuple[AsyncEngine, SeedReport],
) -> None:
    engine, _ = seeded
    complaints = {
        r.id: r
        for r in await _rows(
            engine,
            "SELECT id, status, opened_at, first_responded_at, resolved_at, closed_at, assignee,"
            " root_cause_code, resolution_code FROM complaints",
        )
    }
    events: dict[Any, list[Any]] = {}
    transitions = (
        "SELECT complaint_id, from_status, to_status, at FROM complaint_events WHERE kind = 'transition' ORDER BY id"
    )
    for e in await _rows(engine, transitions):
        events.setdefault(e.complaint_id, []).append(e)
    assert set(events) == set(complaints)
    statuses = set()
    for cid, k in complaints.items():
        walk = events[cid]
        assert walk[0].from_status is None
        assert walk[0].to_status == "new"
        assert walk[0].at == k.opened_at
        for before, after in itertools.pairwise(walk):
            assert after.from_status == before.to_status
            assert after.to_status in TRANSITIONS[before.to_status]
            assert after.at >= before.at
        assert walk[-1].to_status == k.status
        statuses.add(k.status)
        if k.status != "new":
            assert k.first_responded_at is not None
            assert k.first_responded_at >= k.opened_at
        if k.status in ("resolved", "closed"):
            assert k.resolved_at is not None
            assert k.resolved_at >= k.first_responded_at
            assert k.assignee
            assert k.root_cause_code
            assert k.resolution_code
        else:
            assert k.resolved_at is None
            assert k.resolution_code is None
        if k.status == "closed":
            assert k.closed_at is not None
            assert k.closed_at >= k.resolved_at
    assert "closed" in statuses


async def test_teams_hold_a_share_of_the_open_complaints_of_their_categories(
    seeded: tuple[AsyncEngine, SeedReport],
) -> None:
    """The demo's team queues have something to show: teams of the seeded staff, each holding open complaints
    of its own categories only, handed over as assignComplaint hands one over (an assignment event saying
    so, the version moved past it)."""
    engine, report = seeded
    teams = {
        r.name: r
        for r in await _rows(
            engine,
            "SELECT t.id, t.name, t.archived_at, array_agg(m.user_id ORDER BY m.user_id) AS members"
            " FROM teams t JOIN team_members m ON m.team_id = t.id GROUP BY t.id, t.name",
        )
    }
    assert {name: (t.members, t.archived_at) for name, t in teams.items()} == {
        name: (sorted(staff), None) for name, staff, _ in _TEAMS
    }
    assert (report.teams, report.team_members) == (len(teams), sum(len(t.members) for t in teams.values()))
    categories = {name: set(cats) for name, _, cats in _TEAMS}
    async with engine.connect() as conn:
        k, e, tm = t.complaints, t.complaint_events, t.teams
        handed = (
            await conn.execute(
                select(k.c.id, k.c.status, k.c.category_code, k.c.version, tm.c.name).join(tm, tm.c.id == k.c.team_id)
            )
        ).all()
        events = (await conn.execute(select(e.c.complaint_id, e.c.kind, e.c.note, e.c.at).order_by(e.c.id))).all()
    assert handed, "no complaint was handed to a team"
    assert {r.name for r in handed} <= set(teams)
    history: dict[Any, list[Any]] = {}
    for ev in events:
        history.setdefault(ev.complaint_id, []).append(ev)
    for r in handed:
        assert r.status in ("new", "open", "pending_customer", "on_hold"), r
        assert r.category_code in categories[r.name], r
        walk = history[r.id]
        assert r.version == len(walk)
        assert [(ev.kind, ev.note) for ev in walk if ev.kind == "assignment"] == [
            ("assignment", f"team: (none) -> {r.name}")
        ]
        assert walk[-1].kind == "assignment"
        assert walk[-1].at >= walk[-2].at
    [(open_of_those, teamless)] = await _rows(
        engine,
        "SELECT count(*), count(*) FILTER (WHERE team_id IS NULL) FROM complaints"
        " WHERE status IN ('new', 'open', 'pending_customer', 'on_hold') AND category_code = ANY(:c)",
        c=sorted(set().union(*categories.values())),
    )
    assert len(handed) == open_of_those - teamless  # (a share: at 200 customers, possibly all of them)


# What the seed generates (not what the service computes from it afterwards: metrics, tiers, churn depend
# on the clock), in a stable order; encrypted columns are read decrypted through the tables' types.
_FINGERPRINTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "partners": (("id", "name"), ("name",)),
    "customers": (
        (
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
        ),
        ("id",),
    ),
    "purchases": (
        ("id", "customer_id", "partner_id", "external_id", "amount", "currency", "channel", "purchased_at"),
        ("id",),
    ),
    "complaints": (
        (
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
            "team_id",
            "resolution_code",
            "first_responded_at",
            "resolved_at",
            "closed_at",
            "paused_seconds",
            "reopen_count",
            "opened_at",
        ),
        ("id",),
    ),
    "complaint_events": (("complaint_id", "kind", "from_status", "to_status", "at", "actor", "note"), ("id",)),
    "teams": (("id", "name", "created_at", "archived_at"), ("name",)),
    "team_members": (("team_id", "user_id", "added_by", "created_at"), ("team_id", "user_id")),
    "surveys": (("id", "title", "trigger", "channels", "per_complaint"), ("title",)),
    "survey_invitations": (("survey_id", "customer_id", "complaint_id", "channel", "sent_at"), ("id",)),
    "survey_responses": (
        ("id", "survey_id", "customer_id", "complaint_id", "partner_id", "external_id", "channel", "submitted_at"),
        ("id",),
    ),
    "survey_answers": (("response_id", "question_id", "score", "choices", "text"), ("id",)),
}


async def _fingerprint(engine: AsyncEngine) -> tuple[dict[str, int], str]:
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        for name, (columns, order) in _FINGERPRINTED.items():
            table = t.metadata.tables[name]
            stmt = select(*(table.c[c] for c in columns)).order_by(*(table.c[c] for c in order))
            rows = (await conn.execute(stmt)).all()
            counts[name] = len(rows)
            for row in rows:
                digest.update(repr(tuple(row)).encode())
    return counts, digest.hexdigest()


# Recorded with Faker 40.x (its locale data feeds the names and addresses, so another Faker may give other data).
_FAKER_OF_FINGERPRINT = "40."
_FINGERPRINT_COUNTS = {
    "partners": 3,
    "customers": 60,
    "purchases": 660,
    "complaints": 11,
    "complaint_events": 51,
    "teams": 3,
    "team_members": 12,
    "surveys": 3,
    "survey_invitations": 30,
    "survey_responses": 9,
    "survey_answers": 16,
}
_FINGERPRINT_DIGEST = "da088568418fa42efc5e3c4193e6e2881a7878ff93d7e68ecf26dc7e8dcda903"


async def test_the_seed_writes_the_recorded_data(fresh_database_url: FreshUrl) -> None:
    """A fixed seed and reference time give exactly the recorded rows: moving or refactoring the seed must
    not change the demo data (the README tour's outputs come from it)."""
    from faker import VERSION

    if not VERSION.startswith(_FAKER_OF_FINGERPRINT):
        pytest.skip(f"fingerprint recorded under Faker {_FAKER_OF_FINGERPRINT}x, installed: {VERSION}")
    engine = create_engine(await fresh_database_url(), test_settings())
    try:
        await seed(engine, 60, seed=11, progress=False, now=datetime(2026, 12, 1, tzinfo=UTC))
        counts, digest = await _fingerprint(engine)
    finally:
        await engine.dispose()
    assert counts == _FINGERPRINT_COUNTS
    assert digest == _FINGERPRINT_DIGEST


async def test_benefits_refunds_and_uses_are_seeded_within_their_rules(seeded: tuple[AsyncEngine, SeedReport]) -> None:
    """The economics report has something to show: benefits of the active policy, refunds never above their
    purchase, uses only by customers of an eligible tier, costed by their model."""
    engine, _ = seeded
    [(benefits, refunds, over, uses, ineligible, miscosted)] = await _rows(
        engine,
        """
        SELECT (SELECT count(*) FROM benefits b JOIN tier_policies p ON p.id = b.policy_id WHERE p.status = 'active'),
               (SELECT count(*) FROM refunds),
               (SELECT count(*) FROM refunds r JOIN purchases p ON p.id = r.purchase_id WHERE r.amount > p.amount),
               (SELECT count(*) FROM benefit_redemptions),
               (SELECT count(*) FROM benefit_redemptions u JOIN benefits b ON b.id = u.benefit_id
                WHERE NOT u.tier_code = ANY(b.tiers)),
               (SELECT count(*) FROM benefit_redemptions u JOIN benefits b ON b.id = u.benefit_id
                WHERE u.cost <> CASE b.cost_model WHEN 'percent_of_order' THEN round(u.order_amount * b.cost_value / 100, 2)
                                                  ELSE round(b.cost_value, 2) END)
        """,
    )
    assert benefits == 4
    assert refunds > 0
    assert uses > 0
    assert (over, ineligible, miscosted) == (0, 0, 0)
