"""economics summaries kept current (issue 15): what ``tierEconomics`` sums, per UTC day x tier now x partner.

The report attributes each fact to its customer's tier *now*, counts only live customers (not erased, not
merged), and sums over a period: purchases, refunds, benefit uses (count and cost), complaints opened (count
and handling time) and survey responses. Summing the fact tables per customer and joining every live customer
takes time in the number of customers; these summaries make it take time in days x tiers x partners:

- economics_days: per UTC day of the fact x the customer's tier now x its partner, the sums of the facts of
  live customers. A complaint counts on its day of opening; its handling seconds (resolved - opened - paused,
  never below 0) only once it is resolved: the report adds the time of complaints still running at the end
  of its period itself (infra/repos/economics.py), since that depends on the period and the clock.
- economics_reach: per tier now x partner, the live customers.

Kept current inside PostgreSQL, in the writing transaction, by statement-level triggers (transition tables):
on purchases, refunds, benefit_redemptions, complaints and survey_responses (a fact inserted, changed,
re-pointed to another customer by a merge, or deleted adds its delta under its customer's current tier and
partner) and on customers (a change of tier, partner or liveness moves all of the customer's facts from the
old key to the new one; a merge or erasure takes them out). Deltas are added with INSERT ... ON CONFLICT DO
UPDATE in key order (writers of one day and tier serialize on that row until they commit; the order keeps
them from deadlocking). ``economics_summaries_rebuild()`` fills both from the data (here, and after bulk loads
that bypass the triggers: bench/generate.py). Customers are never deleted while they have facts (the foreign
keys restrict it), so a customer's deletion only updates the reach.

Two indexes let the report read the partial days at either end of a period that does not start or end at a
UTC midnight: purchases (purchased_at) and survey_responses (submitted_at); and one finds the complaints of
a period still open: complaints (opened_at) WHERE resolved_at IS NULL.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import execute_function_script

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ("revenue", "refunds", "benefit_cost", "benefit_uses", "complaints", "complaint_seconds", "responses")

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


def contributions(table: str, rows: str, where: str = "") -> str:
    """``customer_id, at, <the sums>`` of each row of ``rows`` (a relation with the columns of ``table``)."""
    at, values = FACTS[table]
    sums = ", ".join(f"{values.get(s, '0')} AS {s}" for s in SUMS)
    return f"SELECT x.customer_id, x.{at} AS at, {sums} FROM {rows} x{where}"


def add(source: str) -> str:
    """Add ``source`` (sign, customer_id, at, <the sums>) to economics_days under the customers' tier and
    partner now, live customers only, in key order."""
    signed = ", ".join(f"sum(d.sign * d.{s})" for s in SUMS)
    nonzero = " OR ".join(f"sum(d.sign * d.{s}) <> 0" for s in SUMS)
    update = ", ".join(f"{s} = e.{s} + EXCLUDED.{s}" for s in SUMS)
    return f"""
    INSERT INTO economics_days AS e (day, tier, partner_id, {", ".join(SUMS)})
    SELECT (d.at AT TIME ZONE 'UTC')::date, c.tier_code, c.partner_id, {signed}
    FROM ({source}) d JOIN customers c ON c.id = d.customer_id
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
    GROUP BY 1, 2, 3 HAVING {nonzero}
    ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT uq_economics_days DO UPDATE SET {update};"""


def _signed(table: str, rows: str, sign: int) -> str:
    return contributions(table, rows).replace("SELECT ", f"SELECT {sign} AS sign, ", 1)


def fact_trigger(table: str) -> str:
    return f"""
CREATE FUNCTION economics_{table}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {add(_signed(table, "economics_new", 1))}
    ELSIF TG_OP = 'DELETE' THEN
        {add(_signed(table, "economics_old", -1))}
    ELSE
        {add(_signed(table, "economics_new", 1) + " UNION ALL " + _signed(table, "economics_old", -1))}
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER economics_{table}_inserted AFTER INSERT ON {table}
    REFERENCING NEW TABLE AS economics_new FOR EACH STATEMENT EXECUTE FUNCTION economics_{table}_changed();
CREATE TRIGGER economics_{table}_updated AFTER UPDATE ON {table}
    REFERENCING OLD TABLE AS economics_old NEW TABLE AS economics_new
    FOR EACH STATEMENT EXECUTE FUNCTION economics_{table}_changed();
CREATE TRIGGER economics_{table}_deleted AFTER DELETE ON {table}
    REFERENCING OLD TABLE AS economics_old FOR EACH STATEMENT EXECUTE FUNCTION economics_{table}_changed();
"""


# The customers of an UPDATE whose tier, partner or liveness changed, with the old and the new key.
MOVED = """
    SELECT o.id, o.tier_code AS otier, o.partner_id AS opartner,
           o.deleted_at IS NULL AND o.merged_into_id IS NULL AS olive,
           n.tier_code AS ntier, n.partner_id AS npartner, n.deleted_at IS NULL AND n.merged_into_id IS NULL AS nlive
    FROM economics_old o JOIN economics_new n ON n.id = o.id
    WHERE (o.tier_code, o.partner_id, o.deleted_at IS NULL AND o.merged_into_id IS NULL)
          IS DISTINCT FROM (n.tier_code, n.partner_id, n.deleted_at IS NULL AND n.merged_into_id IS NULL)"""


def _moved_facts() -> str:
    """The facts of the customers in ``economics_moved`` (id, otier, opartner, olive, ntier, npartner, nlive),
    taken out under the old key and added under the new one."""
    where = " WHERE x.customer_id IN (SELECT id FROM economics_moved)"
    facts = " UNION ALL ".join(contributions(t, t, where) for t in FACTS)
    sums = ", ".join(f"f.{s}" for s in SUMS)
    signed = ", ".join(f"sum(m.sign * m.{s})" for s in SUMS)
    nonzero = " OR ".join(f"sum(m.sign * m.{s}) <> 0" for s in SUMS)
    update = ", ".join(f"{s} = e.{s} + EXCLUDED.{s}" for s in SUMS)
    return f"""
    WITH economics_moved AS ({MOVED}),
    f AS ({facts}),
    m AS (
        SELECT -1 AS sign, f.at, mv.otier AS tier, mv.opartner AS partner_id, {sums}
        FROM f JOIN economics_moved mv ON mv.id = f.customer_id WHERE mv.olive
        UNION ALL
        SELECT 1, f.at, mv.ntier, mv.npartner, {sums}
        FROM f JOIN economics_moved mv ON mv.id = f.customer_id WHERE mv.nlive
    )
    INSERT INTO economics_days AS e (day, tier, partner_id, {", ".join(SUMS)})
    SELECT (m.at AT TIME ZONE 'UTC')::date, m.tier, m.partner_id, {signed}
    FROM m GROUP BY 1, 2, 3 HAVING {nonzero}
    ORDER BY 1, 2, 3
    ON CONFLICT ON CONSTRAINT uq_economics_days DO UPDATE SET {update};"""


def _reach(source: str) -> str:
    """Add ``source`` (tier, partner_id, sign) to economics_reach, in key order."""
    return f"""
    INSERT INTO economics_reach AS r (tier, partner_id, customers)
    SELECT s.tier, s.partner_id, sum(s.sign) FROM ({source}) s
    GROUP BY 1, 2 HAVING sum(s.sign) <> 0 ORDER BY 1, 2
    ON CONFLICT ON CONSTRAINT uq_economics_reach DO UPDATE SET customers = r.customers + EXCLUDED.customers;"""


LIVE = "deleted_at IS NULL AND merged_into_id IS NULL"

UPGRADE = f"""
CREATE TABLE economics_days (
    day date NOT NULL,
    tier text,
    partner_id uuid,
    revenue numeric NOT NULL DEFAULT 0,
    refunds numeric NOT NULL DEFAULT 0,
    benefit_cost numeric NOT NULL DEFAULT 0,
    benefit_uses bigint NOT NULL DEFAULT 0,
    complaints bigint NOT NULL DEFAULT 0,
    complaint_seconds numeric NOT NULL DEFAULT 0,
    responses bigint NOT NULL DEFAULT 0,
    CONSTRAINT uq_economics_days UNIQUE NULLS NOT DISTINCT (day, tier, partner_id)
);
CREATE TABLE economics_reach (
    tier text,
    partner_id uuid,
    customers bigint NOT NULL DEFAULT 0,
    CONSTRAINT uq_economics_reach UNIQUE NULLS NOT DISTINCT (tier, partner_id)
);
CREATE INDEX ix_purchases_purchased_at ON purchases (purchased_at);
CREATE INDEX ix_survey_responses_submitted_at ON survey_responses (submitted_at);
CREATE INDEX ix_complaints_open_opened_at ON complaints (opened_at) WHERE resolved_at IS NULL;
CREATE INDEX ix_complaints_resolved_at ON complaints (resolved_at);

{"".join(fact_trigger(t) for t in FACTS)}

CREATE FUNCTION economics_customers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_reach(f"SELECT tier_code AS tier, partner_id, 1 AS sign FROM economics_new WHERE {LIVE}")}
    ELSIF TG_OP = 'DELETE' THEN
        {_reach(f"SELECT tier_code AS tier, partner_id, -1 AS sign FROM economics_old WHERE {LIVE}")}
    ELSE
        IF EXISTS (SELECT 1 FROM ({MOVED}) mv) THEN
            {
    _reach(
        f"WITH economics_moved AS ({MOVED}) "
        "SELECT otier AS tier, opartner AS partner_id, -1 AS sign FROM economics_moved WHERE olive "
        "UNION ALL SELECT ntier, npartner, 1 FROM economics_moved WHERE nlive"
    )
}
            {_moved_facts()}
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER economics_customers_inserted AFTER INSERT ON customers
    REFERENCING NEW TABLE AS economics_new FOR EACH STATEMENT EXECUTE FUNCTION economics_customers_changed();
CREATE TRIGGER economics_customers_updated AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS economics_old NEW TABLE AS economics_new
    FOR EACH STATEMENT EXECUTE FUNCTION economics_customers_changed();
CREATE TRIGGER economics_customers_deleted AFTER DELETE ON customers
    REFERENCING OLD TABLE AS economics_old FOR EACH STATEMENT EXECUTE FUNCTION economics_customers_changed();

CREATE FUNCTION economics_summaries_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE economics_days, economics_reach;
    {add(" UNION ALL ".join(_signed(t, t, 1) for t in FACTS))}
    {_reach(f"SELECT tier_code AS tier, partner_id, 1 AS sign FROM customers WHERE {LIVE}")}
END $$;
"""

DOWNGRADE = f"""
{"".join(f"DROP TRIGGER economics_{t}_{e} ON {t};" for t in (*FACTS, "customers") for e in ("inserted", "updated", "deleted"))}
{"".join(f"DROP FUNCTION economics_{t}_changed();" for t in (*FACTS, "customers"))}
DROP FUNCTION economics_summaries_rebuild();
DROP INDEX ix_purchases_purchased_at, ix_survey_responses_submitted_at, ix_complaints_open_opened_at,
    ix_complaints_resolved_at;
DROP TABLE economics_days, economics_reach;
"""



def upgrade() -> None:
    execute_function_script(UPGRADE)
    op.execute(sa.text("SELECT economics_summaries_rebuild()"))


def downgrade() -> None:
    execute_function_script(DOWNGRADE)
