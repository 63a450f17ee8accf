"""economics summaries under concurrent re-tiering (issue 15): a fact's trigger locks the customers it counts.

Each fact trigger of 0023/0024 appends the statement's deltas under the tier (partner, liveness) its
customers have *now*, as the statement sees them; the customers trigger moves a customer's facts from the old
key to the new one when that changes. Under READ COMMITTED the two missed each other when they ran in two
transactions at once, and the summaries then differed from the data until a rebuild:

- transaction A inserts a purchase for customer C (its trigger appends it under silver) and has not
  committed; B changes C to gold and commits: B's trigger moves the facts of C it can see, not A's purchase
  (B's UPDATE did not wait: A's foreign-key check holds ``FOR KEY SHARE`` on C, which a non-key UPDATE does
  not conflict with); A commits: the purchase stays under silver;
- B changes C to gold and has not committed (its trigger ran, moving what it saw); A inserts a purchase for C:
  its trigger still reads silver; both commit, in either order: the purchase stays under silver.

The same with refunds, benefit uses, complaints, survey responses, with deletes and updates of facts, and with
changes of partner or liveness (merge, erasure): tests/integration/test_economics_summaries.py reproduces both
orders on two connections. (Benefit uses recorded through their use-case escaped it: it locks its customers
``FOR UPDATE`` before deciding the uses, infra/repos/benefits.py; purchases, refunds, complaints and survey
responses did not.)

Each fact trigger now first locks, ``FOR NO KEY UPDATE`` and in id order, the customers whose figures the
statement changes (those with a delta that is not 0 on some day: a complaint's change of status or team alone
locks nothing), then appends its deltas in a statement of its own:

- A first: B's UPDATE of C waits for A's commit (the lock conflicts with the UPDATE's own row lock); B's
  trigger then runs after its UPDATE, and every statement of a plpgsql function takes a new snapshot under
  READ COMMITTED, so it sees A's committed purchase and moves it to gold.
- B first: A's lock waits for B's commit; A's next statement (the append, with a new snapshot) reads gold.

``FOR NO KEY UPDATE`` rather than ``FOR SHARE``: two ingest transactions that share-locked a customer and
then both re-tiered it would deadlock; this way the second waits at its trigger for the first to commit.
What else waits now, and what can deadlock:

- writers of facts of the same customer wait for each other's commit. Ingest batches of overlapping
  customers did already, later in their transaction and in no particular order, on the customers'
  customer_metrics rows (the after-change step's upsert); now they wait at their first fact statement, in id
  order, and the after-change step's re-tier finds its customers locked by its own transaction. Writers of
  *different* customers of one day, tier and partner still never wait for each other (0024's deltas);
- a change of tier (partner, liveness) of a customer waits for the open writers of its facts, and they for
  it: a batch of a full re-tier (one UPDATE of the customers of an id range that move) and an ingest batch
  sharing customers wait for each other's commit;
- transactions that lock customers in different orders can deadlock; PostgreSQL cancels one of them (its
  caller gets the error): one writing facts of C1 then of C2 in two statements while another writes C2's
  then C1's (tests/integration/test_economics_summaries.py shows it), an UPDATE of many customers (a re-tier
  batch) that reaches them in another order than an ingest batch's id order, or a complaint's resolution
  (the complaint locked, then its customer) while a merge of that customer (the customers locked, then its
  complaints re-pointed). The use-cases write one statement of facts per set of customers and then re-tier
  those same customers, so an ingest batch alone locks in id order.

Measured (bench/economics_locks.py, 20 000 customers, a loaded 2-core machine): an INSERT of 500 purchases for
500 distinct customers 14.6 ms against 13.6 ms without the locks (median of 40), the same with the
after-change step of an ingest batch 56.6 ms against 53.6 ms.

The builders below are 0024's, copied (a migration stays as it landed): ``locking=False`` gives 0024's fact
functions back for the downgrade.

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.migrate import execute_function_script

revision: str = "0028"
down_revision: str | None = "0027"
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


def contributions(table: str, rows: str, where: str = "") -> str:
    """``customer_id, at, <the sums>`` of each row of ``rows`` (a relation with the columns of ``table``)."""
    at, values = FACTS[table]
    sums = ", ".join(f"{values.get(s, '0')} AS {s}" for s in SUMS)
    return f"SELECT x.customer_id, x.{at} AS at, {sums} FROM {rows} x{where}"


def _signed(table: str, rows: str, sign: int) -> str:
    return contributions(table, rows).replace("SELECT ", f"SELECT {sign} AS sign, ", 1)


def add(source: str) -> str:
    """Append ``source`` (sign, customer_id, at, <the sums>) to the day deltas under the customers' tier and
    partner now, live customers only, one row per key whose sums are not all 0 (0024's ``add``)."""
    signed = ", ".join(f"sum(d.sign * d.{s})" for s in SUMS)
    nonzero = " OR ".join(f"sum(d.sign * d.{s}) <> 0" for s in SUMS)
    return f"""
    INSERT INTO economics_day_deltas (day, tier, partner_id, {COLUMNS})
    SELECT (d.at AT TIME ZONE 'UTC')::date, c.tier_code, c.partner_id, {signed}
    FROM ({source}) d JOIN customers c ON c.id = d.customer_id
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
    GROUP BY 1, 2, 3 HAVING {nonzero};"""


def lock(source: str) -> str:
    """Lock the customers of ``source`` (sign, customer_id, at, <the sums>) whose sums on some day are not all
    0 — the customers whose figures the statement changes — ``FOR NO KEY UPDATE``, in id order."""
    nonzero = " OR ".join(f"sum(d.sign * d.{s}) <> 0" for s in SUMS)
    return f"""
    PERFORM 1 FROM customers c
    WHERE c.id IN (SELECT d.customer_id FROM ({source}) d
                   GROUP BY d.customer_id, (d.at AT TIME ZONE 'UTC')::date HAVING {nonzero})
    ORDER BY c.id FOR NO KEY UPDATE;"""


def _fact_function(table: str, *, locking: bool) -> str:
    new, old = _signed(table, "economics_new", 1), _signed(table, "economics_old", -1)
    both = new + " UNION ALL " + old
    held = {source: lock(source) if locking else "" for source in (new, old, both)}
    return f"""
CREATE OR REPLACE FUNCTION economics_{table}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN{held[new]}
        {add(new)}
    ELSIF TG_OP = 'DELETE' THEN{held[old]}
        {add(old)}
    ELSE{held[both]}
        {add(both)}
    END IF;
    RETURN NULL;
END $$;
"""


def functions(*, locking: bool) -> str:
    """Every fact trigger function: locking the customers first, or (not ``locking``) as 0024 made them."""
    return "".join(_fact_function(t, locking=locking) for t in FACTS)


def upgrade() -> None:
    execute_function_script(functions(locking=True))


def downgrade() -> None:
    execute_function_script(functions(locking=False))
