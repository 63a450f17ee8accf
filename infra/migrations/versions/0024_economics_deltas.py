"""economics summaries without write contention (issue 15): writers append deltas, a job folds them in.

Migration 0023 added each write's deltas to economics_days and economics_reach with INSERT ... ON CONFLICT DO
UPDATE, so two transactions writing facts of the same UTC day, tier and partner (two batches of purchases,
refunds or benefit uses for today's gold customers of one partner) serialized on that summary row until the
first one committed; an ingest batch holds it through the rest of its transaction (re-tier, churn), so
concurrent ingest for one partner ran one batch at a time.

The same triggers, grouping and counting exactly as before, now append their deltas to economics_day_deltas
and economics_reach_deltas: the summaries' key and sums, insert-only, without a unique constraint, so that a
writer never waits for another. ``economics_compact()`` moves them into the summaries, one statement per table
(DELETE ... RETURNING, summed per key, upserted in key order), one run at a time (a transaction-level advisory
lock: a run that finds it taken does nothing and returns NULL). A periodic job runs it
(TIERWISE_ECONOMICS_COMPACT_CRON, infra/economics.py); it is the summaries' only writer besides
``economics_summaries_rebuild()``, which waits for the same lock and empties the deltas too. Under READ
COMMITTED the DELETE takes the deltas committed when it starts; one committed while it runs stays for the
next run, so a delta is never lost nor counted twice.

The report (infra/repos/economics.py) reads the summaries and the deltas in one statement (one snapshot; a
compaction commits its DELETE and its upsert at once), so it is exact whether or not compaction ran: deltas
waiting only cost it time (bench/results/economics_deltas.md).

The builders below are 0023's, copied (a migration stays as it landed): the trigger functions append to the
deltas; ``upsert=True`` gives 0023's functions back for the downgrade, which first folds the deltas in.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.migrate import execute_function_script

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ("revenue", "refunds", "benefit_cost", "benefit_uses", "complaints", "complaint_seconds", "responses")
COLUMNS = ", ".join(SUMS)

# Per fact table: its time column and what one row adds to each sum (x: the row).
RESOLVED_SECONDS = (
    "CASE WHEN x.resolved_at IS NULL THEN 0 "
    "ELSE greatest(extract(epoch FROM x.resolved_at - x.opened_at) - x.paused_seconds, 0) END"
)
FACTS: dict[str, tuple[str, dict[str, str]]] = {
    "purchases": ("purchased_at", {"revenue": "x.amount"}),
    "refunds": ("refunded_at", {"refunds": "x.amount"}),
    "benefit_redemptions": ("redeemed_at", {"benefit_cost": "x.cost", "benefit_uses": "1"}),
    "complaints": ("opened_at", {"complaints": "1", "complaint_seconds": RESOLVED_SECONDS}),
    "survey_responses": ("submitted_at", {"responses": "1"}),
}
LIVE = "deleted_at IS NULL AND merged_into_id IS NULL"
# One compaction at a time (and a rebuild waits for it): the key of their transaction-level advisory lock.
LOCK = "hashtext('tierwise.economics_compact')"


def contributions(table: str, rows: str, where: str = "") -> str:
    """``customer_id, at, <the sums>`` of each row of ``rows`` (a relation with the columns of ``table``)."""
    at, values = FACTS[table]
    sums = ", ".join(f"{values.get(s, '0')} AS {s}" for s in SUMS)
    return f"SELECT x.customer_id, x.{at} AS at, {sums} FROM {rows} x{where}"


def _signed(table: str, rows: str, sign: int) -> str:
    return contributions(table, rows).replace("SELECT ", f"SELECT {sign} AS sign, ", 1)


def _days(grouped: str, *, upsert: bool, ctes: str = "") -> str:
    """``grouped`` (``ctes`` then a SELECT of day, tier, partner_id, <the sums>, one row per key) appended to
    the day deltas; ``upsert``: added to economics_days in key order (0023)."""
    if not upsert:
        return f"""
    {ctes}INSERT INTO economics_day_deltas (day, tier, partner_id, {COLUMNS})
    {grouped};"""
    update = ", ".join(f"{s} = e.{s} + EXCLUDED.{s}" for s in SUMS)
    return f"""
    {ctes}INSERT INTO economics_days AS e (day, tier, partner_id, {COLUMNS})
    {grouped}
    ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT uq_economics_days DO UPDATE SET {update};"""


def add(source: str, *, upsert: bool) -> str:
    """Add ``source`` (sign, customer_id, at, <the sums>) under the customers' tier and partner now, live
    customers only, one row per key whose sums are not all 0."""
    signed = ", ".join(f"sum(d.sign * d.{s})" for s in SUMS)
    nonzero = " OR ".join(f"sum(d.sign * d.{s}) <> 0" for s in SUMS)
    grouped = f"""SELECT (d.at AT TIME ZONE 'UTC')::date, c.tier_code, c.partner_id, {signed}
    FROM ({source}) d JOIN customers c ON c.id = d.customer_id
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
    GROUP BY 1, 2, 3 HAVING {nonzero}"""
    return _days(grouped, upsert=upsert)


def _fact_function(table: str, *, upsert: bool) -> str:
    new, old = _signed(table, "economics_new", 1), _signed(table, "economics_old", -1)
    return f"""
CREATE OR REPLACE FUNCTION economics_{table}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {add(new, upsert=upsert)}
    ELSIF TG_OP = 'DELETE' THEN
        {add(old, upsert=upsert)}
    ELSE
        {add(new + " UNION ALL " + old, upsert=upsert)}
    END IF;
    RETURN NULL;
END $$;
"""


# The customers of an UPDATE whose tier, partner or liveness changed, with the old and the new key.
MOVED = """
    SELECT o.id, o.tier_code AS otier, o.partner_id AS opartner,
           o.deleted_at IS NULL AND o.merged_into_id IS NULL AS olive,
           n.tier_code AS ntier, n.partner_id AS npartner, n.deleted_at IS NULL AND n.merged_into_id IS NULL AS nlive
    FROM economics_old o JOIN economics_new n ON n.id = o.id
    WHERE (o.tier_code, o.partner_id, o.deleted_at IS NULL AND o.merged_into_id IS NULL)
          IS DISTINCT FROM (n.tier_code, n.partner_id, n.deleted_at IS NULL AND n.merged_into_id IS NULL)"""


def _moved_facts(*, upsert: bool) -> str:
    """The facts of the customers in ``economics_moved`` (id, otier, opartner, olive, ntier, npartner, nlive),
    taken out under the old key and added under the new one."""
    where = " WHERE x.customer_id IN (SELECT id FROM economics_moved)"
    facts = " UNION ALL ".join(contributions(t, t, where) for t in FACTS)
    sums = ", ".join(f"f.{s}" for s in SUMS)
    signed = ", ".join(f"sum(m.sign * m.{s})" for s in SUMS)
    nonzero = " OR ".join(f"sum(m.sign * m.{s}) <> 0" for s in SUMS)
    ctes = f"""WITH economics_moved AS ({MOVED}),
    f AS ({facts}),
    m AS (
        SELECT -1 AS sign, f.at, mv.otier AS tier, mv.opartner AS partner_id, {sums}
        FROM f JOIN economics_moved mv ON mv.id = f.customer_id WHERE mv.olive
        UNION ALL
        SELECT 1, f.at, mv.ntier, mv.npartner, {sums}
        FROM f JOIN economics_moved mv ON mv.id = f.customer_id WHERE mv.nlive
    )
    """
    grouped = f"""SELECT (m.at AT TIME ZONE 'UTC')::date, m.tier, m.partner_id, {signed}
    FROM m GROUP BY 1, 2, 3 HAVING {nonzero}"""
    return _days(grouped, upsert=upsert, ctes=ctes)


def _reach(source: str, *, upsert: bool) -> str:
    """Add ``source`` (tier, partner_id, sign) to the reach: one row per key whose sum is not 0."""
    grouped = f"SELECT s.tier, s.partner_id, sum(s.sign) FROM ({source}) s\n    GROUP BY 1, 2 HAVING sum(s.sign) <> 0"
    if not upsert:
        return f"""
    INSERT INTO economics_reach_deltas (tier, partner_id, customers)
    {grouped};"""
    return f"""
    INSERT INTO economics_reach AS r (tier, partner_id, customers)
    {grouped} ORDER BY 1, 2
    ON CONFLICT ON CONSTRAINT uq_economics_reach DO UPDATE SET customers = r.customers + EXCLUDED.customers;"""


def _customers_function(*, upsert: bool) -> str:
    moved_reach = (
        f"WITH economics_moved AS ({MOVED}) "
        "SELECT otier AS tier, opartner AS partner_id, -1 AS sign FROM economics_moved WHERE olive "
        "UNION ALL SELECT ntier, npartner, 1 FROM economics_moved WHERE nlive"
    )
    return f"""
CREATE OR REPLACE FUNCTION economics_customers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_reach(f"SELECT tier_code AS tier, partner_id, 1 AS sign FROM economics_new WHERE {LIVE}", upsert=upsert)}
    ELSIF TG_OP = 'DELETE' THEN
        {_reach(f"SELECT tier_code AS tier, partner_id, -1 AS sign FROM economics_old WHERE {LIVE}", upsert=upsert)}
    ELSE
        IF EXISTS (SELECT 1 FROM ({MOVED}) mv) THEN
            {_reach(moved_reach, upsert=upsert)}
            {_moved_facts(upsert=upsert)}
        END IF;
    END IF;
    RETURN NULL;
END $$;
"""


# The deltas moved into the summaries, one statement per table: what the DELETE takes is summed per key and
# upserted in key order; ``moved_days`` and ``moved_reach``: how many delta rows it took.
MOVE = f"""
    WITH moved AS (DELETE FROM economics_day_deltas RETURNING *),
    added AS (
        INSERT INTO economics_days AS e (day, tier, partner_id, {COLUMNS})
        SELECT day, tier, partner_id, {", ".join(f"sum({s})" for s in SUMS)} FROM moved
        GROUP BY 1, 2, 3 HAVING {" OR ".join(f"sum({s}) <> 0" for s in SUMS)}
        ORDER BY 1, 2, 3
        ON CONFLICT ON CONSTRAINT uq_economics_days DO UPDATE SET {", ".join(f"{s} = e.{s} + EXCLUDED.{s}" for s in SUMS)}
    )
    SELECT count(*) INTO moved_days FROM moved;
    WITH moved AS (DELETE FROM economics_reach_deltas RETURNING *),
    added AS (
        INSERT INTO economics_reach AS r (tier, partner_id, customers)
        SELECT tier, partner_id, sum(customers) FROM moved
        GROUP BY 1, 2 HAVING sum(customers) <> 0
        ORDER BY 1, 2
        ON CONFLICT ON CONSTRAINT uq_economics_reach DO UPDATE SET customers = r.customers + EXCLUDED.customers
    )
    SELECT count(*) INTO moved_reach FROM moved;"""


def _rebuild_function(*, upsert: bool) -> str:
    """``economics_summaries_rebuild()``: the summaries computed from the data (the deltas emptied)."""
    every_fact = " UNION ALL ".join(_signed(t, t, 1) for t in FACTS)
    every_customer = f"SELECT tier_code AS tier, partner_id, 1 AS sign FROM customers WHERE {LIVE}"
    if upsert:
        return f"""
CREATE OR REPLACE FUNCTION economics_summaries_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE economics_days, economics_reach;
    {add(every_fact, upsert=True)}
    {_reach(every_customer, upsert=True)}
END $$;
"""
    return f"""
CREATE OR REPLACE FUNCTION economics_summaries_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    moved_days bigint;
    moved_reach bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK});
    TRUNCATE economics_day_deltas, economics_reach_deltas, economics_days, economics_reach;
    {add(every_fact, upsert=False)}
    {_reach(every_customer, upsert=False)}
    {MOVE}
END $$;
"""


def functions(*, upsert: bool) -> str:
    """Every trigger function and the rebuild: appending deltas, or (``upsert``) as 0023 made them."""
    return "".join(
        (
            *(_fact_function(t, upsert=upsert) for t in FACTS),
            _customers_function(upsert=upsert),
            _rebuild_function(upsert=upsert),
        )
    )


UPGRADE = f"""
CREATE TABLE economics_day_deltas (
    day date NOT NULL,
    tier text,
    partner_id uuid,
    revenue numeric NOT NULL DEFAULT 0,
    refunds numeric NOT NULL DEFAULT 0,
    benefit_cost numeric NOT NULL DEFAULT 0,
    benefit_uses bigint NOT NULL DEFAULT 0,
    complaints bigint NOT NULL DEFAULT 0,
    complaint_seconds numeric NOT NULL DEFAULT 0,
    responses bigint NOT NULL DEFAULT 0
);
CREATE TABLE economics_reach_deltas (
    tier text,
    partner_id uuid,
    customers bigint NOT NULL DEFAULT 0
);
{functions(upsert=False)}
CREATE FUNCTION economics_compact() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    moved_days bigint;
    moved_reach bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock({LOCK}) THEN
        RETURN NULL;  -- another compaction runs (or a rebuild): it takes these deltas, or the next run does
    END IF;
    {MOVE}
    RETURN moved_days + moved_reach;
END $$;
"""

DOWNGRADE = f"""
LOCK TABLE economics_day_deltas, economics_reach_deltas IN EXCLUSIVE MODE;  -- no delta appended meanwhile
DO $$
DECLARE
    moved_days bigint;
    moved_reach bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK});
    {MOVE}
END $$;
{functions(upsert=True)}
DROP FUNCTION economics_compact();
DROP TABLE economics_day_deltas, economics_reach_deltas;
"""



def upgrade() -> None:
    execute_function_script(UPGRADE)


def downgrade() -> None:
    execute_function_script(DOWNGRADE)
