"""The benchmark data generator (bench/generate.py) at a small scale: the proportions of the issue
(10 purchases, half a complaint and about one survey answer per customer), every foreign key valid
although the COPY skips their triggers, metrics, tiers and SLA clocks computed by the service's code,
sensitive values stored encrypted with their blind indexes, and a run that stops half-way resumed
(then a complete database reused as it is), the report summaries the COPY bypassed rebuilt, and the
secondary indexes deferred during the bulk phase all back as the migrations define them, also after runs
killed half-way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select, text

from bench import generate as gen
from infra import crypto
from infra import tables as t
from infra.db import create_engine
from infra.repos import reports as reports_repo
from infra.repos.base import ALL
from tests.conftest import test_settings

# Every single-column foreign key of the tables the generator fills, from the catalogue.
FOREIGN_KEYS_SQL = """
SELECT c.conrelid::regclass::text AS child, a.attname AS col,
       c.confrelid::regclass::text AS parent, pa.attname AS pcol
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND c.conrelid::regclass::text = ANY(:tables)
"""


async def _indexes(url: str) -> dict[str, str]:
    """Every index of the public schema: name -> definition."""
    engine = create_engine(url, test_settings())
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"))
            return dict(rows.all())
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> None:
    engine = create_engine(url, test_settings())
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _counts(engine: Any) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            name: (await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one()
            for name in (*gen.TABLES, "customer_metrics", "partners", "surveys")
        }


async def _stored_customers(url: str) -> set[tuple[Any, ...]]:
    """Each customer as stored: id and e-mail ciphertext (a fresh nonce each time it is written)."""
    engine = create_engine(url, test_settings())
    try:
        async with engine.connect() as conn:
            return {tuple(r) for r in (await conn.execute(text("SELECT id, email FROM customers"))).all()}
    finally:
        await engine.dispose()


async def test_generated_data_is_complete_consistent_and_encrypted(
    fresh_database_url: Callable[[], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await fresh_database_url()
    monkeypatch.setattr(gen, "CHUNK", 500)  # 4 chunks of 500: a run stopped after the first two is resumed

    first = await gen.generate(url, 1000, progress=False, workers=0)
    assert not first.reused
    assert first.counts["customers"] == 1000
    stored_first = await _stored_customers(url)
    report = await gen.generate(url, 2000, progress=False, workers=0)  # the last two chunks, then the rest
    assert not report.reused
    assert report.rows["COPY customers"] == 2000
    stored = await _stored_customers(url)
    assert len(stored) == 2000
    assert stored_first <= stored  # resumed: the first run's customers were left as they were, not rewritten
    again = await gen.generate(url, 2000, progress=False, workers=0)
    assert again.reused
    assert "metrics & tiers" not in again.seconds  # nothing recomputed
    assert "indexes (rebuild)" in report.seconds
    # The secondary indexes deferred during the bulk phase are all back, as the migrations define them.
    assert await _indexes(url) == await _indexes(await fresh_database_url())

    engine = create_engine(url, test_settings())
    try:
        n = await _counts(engine)
        assert n["customers"] == n["customer_metrics"] == 2000
        assert 8 * 2000 <= n["purchases"] <= 12 * 2000
        assert 0.4 * 2000 <= n["complaints"] <= 0.6 * 2000
        assert n["complaint_events"] >= 2 * n["complaints"]
        assert 0.7 * 2000 <= n["survey_answers"] <= 1.3 * 2000
        assert n["survey_invitations"] > n["survey_responses"] > 0
        assert n["partners"] == 3
        assert n["surveys"] == 3

        async with engine.connect() as conn:
            fks = (
                await conn.execute(text(FOREIGN_KEYS_SQL), {"tables": [*gen.TABLES, "refunds", "benefit_redemptions"]})
            ).all()
            assert len(fks) >= 12
            for fk in fks:
                orphans = (
                    await conn.execute(
                        text(
                            f"SELECT count(*) FROM {fk.child} x WHERE x.{fk.col} IS NOT NULL AND NOT EXISTS "
                            f"(SELECT 1 FROM {fk.parent} p WHERE p.{fk.pcol} = x.{fk.col})"
                        )
                    )
                ).scalar_one()
                assert orphans == 0, fk

            # Metrics from the purchases, a tier for everyone, SLA clocks and tiers on complaints and answers.
            metrics = (
                await conn.execute(
                    text(
                        "SELECT (SELECT sum(order_count) FROM customer_metrics) AS orders,"
                        " (SELECT sum(lifetime_spend) FROM customer_metrics) AS spend,"
                        " (SELECT sum(amount) FROM purchases) AS amounts,"
                        " (SELECT sum(amount) FROM refunds) AS refunded,"
                        " (SELECT count(*) FROM customers WHERE tier_code IS NULL) AS untiered,"
                        " (SELECT count(DISTINCT tier_code) FROM customers) AS tiers,"
                        " (SELECT count(*) FROM complaints WHERE sla_policy_version IS NULL"
                        "   OR tier_at_open IS NULL OR resolution_due_at IS NULL) AS no_sla,"
                        " (SELECT count(*) FROM survey_responses WHERE tier_at_response IS NULL) AS no_tier"
                    )
                )
            ).one()
            closed = (await conn.execute(text("SELECT count(*) FROM refunds WHERE closes_purchase"))).scalar_one()
            assert metrics.orders == n["purchases"] - closed  # a purchase refunded in full is no order
            assert metrics.spend == metrics.amounts - metrics.refunded  # net of refunds

            # For the economics report: the active policy's benefits, one purchase in 40 refunded (never more
            # than was paid), uses of benefits only by customers of an eligible tier, priced by the cost model.
            economics = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM refunds) AS refunds,"
                        " (SELECT count(*) FROM refunds f JOIN purchases p ON p.id = f.purchase_id"
                        "   WHERE f.amount > p.amount OR f.customer_id <> p.customer_id) AS bad_refunds,"
                        " (SELECT count(*) FROM benefits b JOIN tier_policies p ON p.id = b.policy_id"
                        "   WHERE p.status = 'active') AS benefits,"
                        " (SELECT count(*) FROM benefit_redemptions) AS uses,"
                        " (SELECT count(DISTINCT benefit_code) FROM benefit_redemptions) AS used_benefits,"
                        " (SELECT count(*) FROM benefit_redemptions r JOIN benefits b ON b.id = r.benefit_id"
                        "   WHERE NOT r.tier_code = ANY(b.tiers)"
                        "      OR r.cost <> CASE b.cost_model WHEN 'percent_of_order'"
                        "                    THEN round(r.order_amount * b.cost_value / 100, 2)"
                        "                    ELSE b.cost_value END) AS bad_uses"
                    )
                )
            ).one()
            assert n["purchases"] / 80 <= economics.refunds <= n["purchases"] / 20
            assert (economics.bad_refunds, economics.bad_uses) == (0, 0)
            assert economics.benefits == 4
            assert economics.uses > 0
            assert economics.used_benefits >= 2
            assert (metrics.untiered, metrics.no_sla, metrics.no_tier) == (0, 0, 0)
            assert metrics.tiers >= 2
            states = dict((await conn.execute(text("SELECT status, count(*) FROM complaints GROUP BY 1"))).all())
            assert {"closed", "resolved"} <= set(states)
            assert len(states) >= 3
            severities = {r[0] for r in await conn.execute(text("SELECT DISTINCT severity FROM complaints"))}
            assert severities == {"low", "medium", "high", "critical"}
            assert (
                await conn.execute(text("SELECT count(*) FROM complaints WHERE resolution_breached"))
            ).scalar_one() > 0
            kinds = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT q.kind, count(*) FROM survey_answers a JOIN survey_questions q"
                            " ON q.id = a.question_id GROUP BY 1"
                        )
                    )
                ).all()
            )
            assert {"nps", "csat", "ces"} <= set(kinds)
            channels = {r[0] for r in await conn.execute(text("SELECT DISTINCT channel FROM survey_responses"))}
            assert len(channels) >= 3

            # Sensitive values: row-bound tw2 tokens at rest, readable through the service's column types
            # (which decrypt with the row's id), blind indexes equal to what the service computes.
            raw = (
                await conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE email NOT LIKE 'tw2:%') AS email,"
                        " count(*) FILTER (WHERE phone NOT LIKE 'tw2:%') AS phone,"
                        " count(*) FILTER (WHERE national_id NOT LIKE 'tw2:%') AS national_id,"
                        " count(*) FILTER (WHERE birth_date NOT LIKE 'tw2:%') AS birth_date,"
                        " count(*) FILTER (WHERE address NOT LIKE 'tw2:%') AS address,"
                        " count(*) FILTER (WHERE email IS NOT NULL AND email_bidx IS NULL) AS no_bidx,"
                        " count(email) AS emails FROM customers"
                    )
                )
            ).one()
            assert (raw.email, raw.phone, raw.national_id, raw.birth_date, raw.address, raw.no_bidx) == (0,) * 6
            assert raw.emails > 1900
            assert (
                await conn.execute(text("SELECT count(*) FROM complaints WHERE description NOT LIKE 'tw2:%'"))
            ).scalar_one() == 0
            texts = (
                await conn.execute(
                    text("SELECT count(text), count(*) FILTER (WHERE text NOT LIKE 'tw2:%') FROM survey_answers")
                )
            ).one()
            assert texts[0] > 0
            assert texts[1] == 0
            notes = (
                await conn.execute(
                    text("SELECT count(note), count(*) FILTER (WHERE note NOT LIKE 'tw2:%') FROM complaint_events")
                )
            ).one()
            assert notes[0] > 0
            assert notes[1] == 0
            c = t.customers.c
            rows = (
                await conn.execute(
                    select(c.name, c.email, c.phone, c.birth_date, c.address, c.email_bidx, c.name_dob_bidx)
                    .where(c.email.isnot(None), c.birth_date.isnot(None))
                    .limit(50)
                )
            ).all()
            keyring = crypto.current()
            assert len(rows) == 50
            for r in rows:
                assert "@" in r.email
                assert r.email.endswith(".example")
                assert r.email_bidx == keyring.blind_index("email", r.email.lower())
                assert r.name_dob_bidx == keyring.blind_index(
                    "name_dob", crypto.name_dob_index_value(r.name, r.birth_date)
                )
                assert set(r.address) >= {"line1", "postalCode", "city", "country"}
            description = (await conn.execute(select(t.complaints.c.description).limit(1))).scalar_one()
            assert len(description) > 20
            assert not description.startswith(("tw1:", "tw2:"))
            note = (
                await conn.execute(
                    select(t.complaint_events.c.note).where(t.complaint_events.c.note.isnot(None)).limit(1)
                )
            ).scalar_one()
            assert note
            assert not note.startswith(("tw1:", "tw2:"))  # decrypted by the column type
            # The COPY skipped the summaries' triggers: the rebuild after it makes the reports right.
            for groups in (["TIER"], ["PERIOD", "CHANNEL"]):
                args: dict[str, Any] = dict(
                    kind="nps", group_by=groups, period="month", since=None, until=None, survey_id=None, scope=ALL
                )
                summarised = await reports_repo.survey_scores(conn, **args)
                assert summarised == await reports_repo.survey_scores(conn, **args, summaries=False)
                assert sum(r["answers"] for r in summarised) > 0
            fairness = await reports_repo.fairness(conn, since=None, until=None, scope=ALL)
            assert fairness == await reports_repo.fairness(conn, since=None, until=None, scope=ALL, summaries=False)
            assert sum(r["complaints"] for r in fairness) > 0
    finally:
        await engine.dispose()


async def test_interrupted_bulk_phase_ends_with_the_migrated_schema(
    fresh_database_url: Callable[[], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs killed with the secondary indexes deferred (in the load, in the metrics & tiers step, after
    everything else) are finished by a re-run: every recorded index rebuilt, the bookkeeping table dropped."""
    migrated = await _indexes(await fresh_database_url())
    url = await fresh_database_url()
    monkeypatch.setattr(gen, "CHUNK", 300)
    chunks = gen._chunks

    async def first_chunk_only(*args: Any) -> Any:
        async for rows in chunks(*args):
            yield rows
            raise KeyboardInterrupt  # as killed once the first chunk committed

    monkeypatch.setattr(gen, "_chunks", first_chunk_only)
    with pytest.raises(KeyboardInterrupt):
        await gen.generate(url, 900, progress=False, workers=0)
    left = await _indexes(url)
    assert "ix_customers_email_bidx" not in left
    assert "ix_purchases_customer_at" not in left
    assert {"pk_customers", "uq_survey_answers_response_id_question_id", "bench_deferred_indexes_pkey"} <= set(left)
    monkeypatch.setattr(gen, "_chunks", chunks)

    import infra.tiering

    async def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(infra.tiering, "run_full_retier", killed)
    with pytest.raises(KeyboardInterrupt):  # the load resumed and finished, then killed in metrics & tiers
        await gen.generate(url, 900, progress=False, workers=0)
    left = await _indexes(url)
    assert set(gen.RETIER_INDEXES) <= set(left)  # built for the metrics & tiers step
    assert "ix_customers_email_bidx" not in left
    monkeypatch.undo()
    monkeypatch.setattr(gen, "CHUNK", 300)

    report = await gen.generate(url, 900, progress=False, workers=0)
    assert report.reused  # nothing left to load
    assert report.counts["customers"] == report.counts["customer_metrics"] == 900
    assert "indexes (rebuild)" in report.seconds
    assert await _indexes(url) == migrated

    # Killed after everything but the rebuild (the definitions recorded, the indexes dropped): a re-run of a
    # complete database builds them.
    await _execute(
        url,
        f"CREATE TABLE {gen.DEFER_TABLE} (name text PRIMARY KEY, definition text)",
        f"INSERT INTO {gen.DEFER_TABLE} SELECT indexname, indexdef FROM pg_indexes"
        " WHERE indexname IN ('ix_customers_tier', 'uq_survey_responses_once', 'ix_tier_changes_latest')",
        "DROP INDEX ix_customers_tier, uq_survey_responses_once, ix_tier_changes_latest",
    )
    again = await gen.generate(url, 900, progress=False, workers=0)
    assert again.reused
    assert "metrics & tiers" not in again.seconds
    assert await _indexes(url) == migrated
    summaries = await gen.generate(url, 900, progress=False, workers=0)
    assert "indexes (rebuild)" not in summaries.seconds
