"""benefit spending per day, kept current without write contention (issue 15): what budget warnings sum.

A batch of benefit uses warns when it brings a benefit's spending by one tier in a budget period (a UTC
calendar month, quarter or year) to 80 % of its budget or past it, so it needs what the period's earlier uses
cost. Summing benefit_redemptions for that takes time in the uses of the period: at 1 000 000 customers, a
month of free shipping for gold is ~25 000 rows and a quarter ~75 000 (30-90 ms per benefit and tier, three
of them in a batch of the benchmark's), which held benefit-use ingest to ~2 500 uses/s while purchases and
refunds ran at ~7 000/s (bench/results/economics.md).

- benefit_spend_days: per UTC day of the use x benefit code x tier at the use (the tier the use was charged
  under, benefit_redemptions.tier_code, not the customer's tier now), the cost and the count of the uses.
  A period's spending is the sum of its days: at most 366 rows, whatever the number of customers.
- benefit_spend_deltas: the same key and sums, insert-only, no unique constraint. A statement-level trigger
  on benefit_redemptions (insert, update, delete) appends one grouped delta per key, so two writers of one
  benefit, tier and day never wait for each other (as migration 0024 does for the economics summaries).
- ``benefit_spend_compact()`` moves the deltas into the days (DELETE ... RETURNING, summed per key, upserted
  in key order) under a transaction-level advisory lock of its own; the economics compaction job runs it
  with ``economics_compact()`` (infra/economics.py). Readers sum days and deltas in one statement, so the
  figure is exact whether or not compaction ran.
- ``benefit_spend_rebuild()`` recomputes both from benefit_redemptions (after bulk loads that skip triggers:
  bench/generate.py), and the upgrade fills them from the uses already recorded.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.migrate import execute_function_script

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCK = "hashtext('tierwise.benefit_spend_compact')"


def _grouped(source: str) -> str:
    """``source`` (sign, redeemed_at, benefit_code, tier_code, cost) summed per day, benefit and tier, keys
    whose sums are not both 0."""
    return f"""SELECT (s.redeemed_at AT TIME ZONE 'UTC')::date, s.benefit_code, s.tier_code,
        sum(s.sign * s.cost), sum(s.sign)
    FROM ({source}) s GROUP BY 1, 2, 3 HAVING sum(s.sign * s.cost) <> 0 OR sum(s.sign) <> 0"""


def _rows(relation: str, sign: int) -> str:
    return f"SELECT {sign} AS sign, redeemed_at, benefit_code, tier_code, cost FROM {relation}"


def _append(source: str) -> str:
    return f"INSERT INTO benefit_spend_deltas (day, benefit_code, tier, cost, uses)\n    {_grouped(source)};"


# The deltas moved into the days in one statement (what the DELETE takes, summed per key, upserted in key
# order); ``taken``: how many delta rows it took.
MOVE = """
    WITH moved AS (DELETE FROM benefit_spend_deltas RETURNING *),
    added AS (
        INSERT INTO benefit_spend_days AS d (day, benefit_code, tier, cost, uses)
        SELECT day, benefit_code, tier, sum(cost), sum(uses) FROM moved
        GROUP BY 1, 2, 3 HAVING sum(cost) <> 0 OR sum(uses) <> 0
        ORDER BY 2, 3, 1
        ON CONFLICT ON CONSTRAINT uq_benefit_spend_days DO UPDATE SET cost = d.cost + EXCLUDED.cost,
            uses = d.uses + EXCLUDED.uses
    )
    SELECT count(*) INTO taken FROM moved;"""

UPGRADE = f"""
CREATE TABLE benefit_spend_days (
    day date NOT NULL,
    benefit_code text NOT NULL,
    tier text NOT NULL,
    cost numeric NOT NULL DEFAULT 0,
    uses bigint NOT NULL DEFAULT 0,
    CONSTRAINT uq_benefit_spend_days UNIQUE (benefit_code, tier, day)
);
CREATE TABLE benefit_spend_deltas (
    day date NOT NULL,
    benefit_code text NOT NULL,
    tier text NOT NULL,
    cost numeric NOT NULL DEFAULT 0,
    uses bigint NOT NULL DEFAULT 0
);
CREATE INDEX ix_benefit_spend_deltas_key ON benefit_spend_deltas (benefit_code, tier, day);

CREATE FUNCTION benefit_spend_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_append(_rows("spend_new", 1))}
    ELSIF TG_OP = 'DELETE' THEN
        {_append(_rows("spend_old", -1))}
    ELSE
        {_append(_rows("spend_new", 1) + " UNION ALL " + _rows("spend_old", -1))}
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER benefit_spend_inserted AFTER INSERT ON benefit_redemptions
    REFERENCING NEW TABLE AS spend_new FOR EACH STATEMENT EXECUTE FUNCTION benefit_spend_changed();
CREATE TRIGGER benefit_spend_updated AFTER UPDATE ON benefit_redemptions
    REFERENCING OLD TABLE AS spend_old NEW TABLE AS spend_new FOR EACH STATEMENT EXECUTE FUNCTION benefit_spend_changed();
CREATE TRIGGER benefit_spend_deleted AFTER DELETE ON benefit_redemptions
    REFERENCING OLD TABLE AS spend_old FOR EACH STATEMENT EXECUTE FUNCTION benefit_spend_changed();

CREATE FUNCTION benefit_spend_compact() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    taken bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock({LOCK}) THEN
        RETURN NULL;  -- another compaction (or a rebuild) runs: it takes these deltas, or the next run does
    END IF;
    {MOVE}
    RETURN taken;
END $$;

CREATE FUNCTION benefit_spend_rebuild() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    taken bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK});
    TRUNCATE benefit_spend_deltas, benefit_spend_days;
    {_append(_rows("benefit_redemptions", 1))}
    {MOVE}
END $$;

SELECT benefit_spend_rebuild();
"""

DOWNGRADE = """
DROP TRIGGER benefit_spend_inserted ON benefit_redemptions;
DROP TRIGGER benefit_spend_updated ON benefit_redemptions;
DROP TRIGGER benefit_spend_deleted ON benefit_redemptions;
DROP FUNCTION benefit_spend_changed();
DROP FUNCTION benefit_spend_compact();
DROP FUNCTION benefit_spend_rebuild();
DROP TABLE benefit_spend_deltas, benefit_spend_days;
"""



def upgrade() -> None:
    execute_function_script(UPGRADE)


def downgrade() -> None:
    execute_function_script(DOWNGRADE)
